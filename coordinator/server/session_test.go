package server

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A dashboard session lives as long as its token: revoking the token
// sends the next page to the login page and ends the session's open
// event streams.
func TestADashboardSessionEndsWhenItsTokenIsRevoked(t *testing.T) {
	srv, err := Start(context.Background(), Config{DataDir: t.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	ctx := context.Background()
	api := srv.Coordinator.AdminServer()
	made, err := api.CreateToken(ctx, &fleet.CreateTokenRequest{Kind: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// Before srv.Close: a connection the client dialed and never used
	// would hold the server's shutdown for 5 s.
	t.Cleanup(hc.CloseIdleConnections)
	base := "http://" + srv.HTTPAddr
	resp, err := hc.PostForm(base+"/login", url.Values{"token": {made.GetToken()}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	status := func() int {
		t.Helper()
		resp, err := hc.Get(base + "/builds")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := status(); code != http.StatusOK {
		t.Fatalf("the builds page with the session: %d, want 200", code)
	}
	stream, err := hc.Get(base + "/builds/events")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	r := bufio.NewReader(stream.Body)
	if line, err := r.ReadString('\n'); stream.StatusCode != http.StatusOK || err != nil || !strings.HasPrefix(line, "retry:") {
		t.Fatalf("the event stream: %s, %q, %v", stream.Status, line, err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, r)
		ended <- err
	}()

	if _, err := api.RevokeToken(ctx, &fleet.TokenRef{Id: made.GetId()}); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	if code := status(); code != http.StatusSeeOther {
		t.Errorf("the builds page after the revocation: %d, want 303 to the login page", code)
	}
	select {
	case <-ended:
		t.Logf("the event stream ended %s after the revocation", time.Since(revoked))
	case <-time.After(30 * time.Second):
		t.Fatal("the session's event stream is still open 30s after its token was revoked")
	}
}
