package web

import (
	"net/http"
	"strings"
	"testing"
)

func TestAssetsAreServedFromTheBinary(t *testing.T) {
	f := newFixture(t)
	anon := f.client(t, "")
	for path, want := range map[string]string{
		"/static/app.js":  "EventSource",
		"/static/app.css": ".bar",
		"/view.css":       "paused",
	} {
		resp, body := anon.get(t, path)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET %s: %s, body without %q", path, resp.Status, want)
		}
	}
	resp, _ := anon.get(t, "/login")
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("pages lack the %s header", h)
		}
	}
	// Signed in, the login page sends you on.
	resp, _ = f.client(t, f.viewer).get(t, "/login?next=%2Fagents")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/agents" {
		t.Errorf("the login page, signed in: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
}
