package server

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The dashboard answers every path but those the coordinator kept for
// itself: /healthz, /metrics and the webhooks.
func TestTheHTTPPortServesTheDashboardBesideItsOwnPaths(t *testing.T) {
	srv, err := Start(context.Background(), Config{DataDir: t.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + srv.HTTPAddr
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	// Alone on its SQLite file, a coordinator leads.
	if resp, body := get("/healthz"); resp.StatusCode != http.StatusOK || body != `{"status":"ok","role":"leader"}`+"\n" {
		t.Errorf("/healthz: %s %q", resp.Status, body)
	}
	if resp, body := get("/metrics"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "monkeyci_builds_queued") {
		t.Errorf("/metrics: %s", resp.Status)
	}
	if resp, _ := get("/webhooks/github"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /webhooks/github: %s, want 405", resp.Status)
	}
	if resp, _ := get("/builds"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("/builds: %s to %q, want the login page", resp.Status, resp.Header.Get("Location"))
	}
	resp, err := hc.PostForm(base+"/login", url.Values{"token": {srv.AdminToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 {
		t.Errorf("signing in with the admin token: %s, cookies %v", resp.Status, resp.Cookies())
	}
}
