package admin

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Describe says what went wrong with a call to the coordinator at server,
// in one line for people (without the "monkeyci: " prefix).
func Describe(err error, server string) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "the coordinator at " + server + " did not answer in time"
	}
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	msg := st.Message()
	switch st.Code() {
	case codes.Unavailable:
		hint := "is it running? is --tls right?"
		if strings.Contains(msg, "x509") || strings.Contains(msg, "certificate") {
			hint = "give --ca the coordinator's CA: DATA_DIR/tls/ca.pem"
		}
		return "cannot reach the coordinator at " + server + ": " + msg + " (" + hint + ")"
	case codes.Unauthenticated:
		if strings.Contains(msg, "--token") {
			return msg
		}
		return msg + " (give an admin token with --token or MONKEYCI_TOKEN)"
	case codes.PermissionDenied:
		return msg + " (give an admin token with --token or MONKEYCI_TOKEN)"
	case codes.DeadlineExceeded:
		return "the coordinator at " + server + " did not answer in time: " + msg
	case codes.Unimplemented:
		return "the coordinator at " + server + " does not know this call (an older version?): " + msg
	}
	return msg
}
