package admin

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestDescribe(t *testing.T) {
	const at = "10.0.0.1:7433"
	for _, c := range []struct {
		err  error
		want string
	}{
		{status.Error(codes.NotFound, `build "x": not found`), `build "x": not found`},
		{status.Error(codes.Unavailable, "connection refused"),
			"cannot reach the coordinator at 10.0.0.1:7433: connection refused (is it running? is --tls right?)"},
		{status.Error(codes.Unavailable, "tls: failed to verify certificate: x509: certificate signed by unknown authority"),
			"cannot reach the coordinator at 10.0.0.1:7433: tls: failed to verify certificate: x509: certificate signed by unknown authority (give --ca the coordinator's CA: DATA_DIR/tls/ca.pem)"},
		{status.Error(codes.Unauthenticated, "no token: give --token or MONKEYCI_TOKEN"), "no token: give --token or MONKEYCI_TOKEN"},
		{status.Error(codes.Unauthenticated, "unknown token"), "unknown token (give an admin token with --token or MONKEYCI_TOKEN)"},
		{status.Error(codes.PermissionDenied, "a viewer token may not call Trigger"),
			"a viewer token may not call Trigger (give an admin token with --token or MONKEYCI_TOKEN)"},
		{fmt.Errorf("call: %w", context.DeadlineExceeded), "the coordinator at 10.0.0.1:7433 did not answer in time"},
		{errors.New("plain"), "plain"},
	} {
		if got := Describe(c.err, at); got != c.want {
			t.Errorf("Describe(%v)\n got %q\nwant %q", c.err, got, c.want)
		}
	}
}
