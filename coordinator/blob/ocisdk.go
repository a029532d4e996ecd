package blob

import (
	"context"
	"net/http"

	"github.com/oracle/oci-go-sdk/v65/common"
)

// The OCI SDK's calls race when their context ends mid-call (common.Retry
// returns the response variable its goroutine is still writing: a data
// race the race detector sees). So the SDK is given a context that never
// ends, carrying the caller's, and the HTTP request, where cancelling
// matters, is made with the caller's again: the call still ends when the
// caller's context does, through the request's error.

// callerKey holds the caller's context inside the one the SDK is given.
type callerKey struct{}

// sdkCtx is what an SDK call is given for ctx.
func sdkCtx(ctx context.Context) context.Context {
	return context.WithValue(context.WithoutCancel(ctx), callerKey{}, ctx)
}

// callerDispatcher sends the SDK's requests with their caller's context.
type callerDispatcher struct{ next common.HTTPRequestDispatcher }

func (d callerDispatcher) Do(req *http.Request) (*http.Response, error) {
	if caller, ok := req.Context().Value(callerKey{}).(context.Context); ok {
		req = req.WithContext(caller)
	}
	return d.next.Do(req)
}
