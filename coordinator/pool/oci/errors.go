package oci

import (
	"errors"
	"fmt"

	"github.com/oracle/oci-go-sdk/v65/common"
)

// apiError is an OCI service error on one line. The SDK's own message runs
// to ten lines of links and tips, too loud for a log the scaler writes
// every tick; the original stays reachable through Unwrap.
type apiError struct {
	err error
	se  common.ServiceError
}

func (e apiError) Error() string {
	return fmt.Sprintf("%d %s: %s (opc-request-id %s)",
		e.se.GetHTTPStatusCode(), e.se.GetCode(), e.se.GetMessage(), e.se.GetOpcRequestID())
}

func (e apiError) Unwrap() error { return e.err }

// short shortens an SDK service error; any other error passes unchanged.
func short(err error) error {
	var se common.ServiceError
	if errors.As(err, &se) {
		return apiError{err: err, se: se}
	}
	return err
}

// hasStatus tells whether OCI answered err with the HTTP status code.
func hasStatus(err error, code int) bool {
	var se common.ServiceError
	return errors.As(err, &se) && se.GetHTTPStatusCode() == code
}
