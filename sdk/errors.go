package monkeyci

import (
	"errors"

	"google.golang.org/grpc/status"
)

// apiErr is a refusal of the agent: its message alone (the agent's words
// are meant for people), its gRPC status still there for status.Code.
type apiErr struct{ st *status.Status }

func (e apiErr) Error() string              { return e.st.Message() }
func (e apiErr) GRPCStatus() *status.Status { return e.st }

func apiError(err error) error {
	var ae apiErr
	if errors.As(err, &ae) {
		return err
	}
	if st, ok := status.FromError(err); ok {
		return apiErr{st}
	}
	return err
}
