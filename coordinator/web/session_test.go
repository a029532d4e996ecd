package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

func TestAnonymousPagesGetTheLoginPage(t *testing.T) {
	f := newFixture(t)
	anon := f.client(t, "")
	for _, path := range []string{"/", "/builds", "/builds?repo=a&state=queued", "/builds/0123", "/agents"} {
		resp, _ := anon.get(t, path)
		if resp.StatusCode != http.StatusSeeOther {
			t.Errorf("GET %s: %s, want 303 to the login page", path, resp.Status)
			continue
		}
		if want := "/login?next=" + url.QueryEscape(path); resp.Header.Get("Location") != want {
			t.Errorf("GET %s went to %q, want %q", path, resp.Header.Get("Location"), want)
		}
	}
	resp, body := anon.get(t, "/login?next=%2Fagents")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="token"`) || !strings.Contains(body, `value="/agents"`) {
		t.Errorf("the login page (%s) lacks its token field or where it goes next:\n%s", resp.Status, body)
	}
}

func TestAnonymousStreamsAndActionsGet401(t *testing.T) {
	f := newFixture(t)
	b := f.trigger(t, "r")
	anon := f.client(t, "")
	for _, path := range []string{
		"/builds/events", "/builds/" + b.ID + "/events", "/agents/events",
		"/builds/" + b.ID + "/logs/job?stream=out", "/builds/" + b.ID + "/logs/job/follow?stream=out",
	} {
		if resp, _ := anon.get(t, path); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s: %s, want 401", path, resp.Status)
		}
	}
	for _, path := range []string{"/builds/" + b.ID + "/cancel", "/builds/" + b.ID + "/retry", "/logout"} {
		if resp := anon.post(t, path, url.Values{"csrf": {"x"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST %s: %s, want 401", path, resp.Status)
		}
	}
}

func TestAWrongTokenIsRefused(t *testing.T) {
	f := newFixture(t)
	agentToken, err := f.c.AdminServer().CreateToken(context.Background(), &fleet.CreateTokenRequest{Kind: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]int{"wrong": http.StatusUnauthorized, "": http.StatusUnauthorized, agentToken.GetToken(): http.StatusForbidden} {
		c := f.client(t, "")
		resp := c.post(t, "/login", url.Values{"token": {token}})
		if resp.StatusCode != want {
			t.Errorf("token %q: %s, want %d", token, resp.Status, want)
		}
		if len(resp.Cookies()) != 0 {
			t.Errorf("token %q: a cookie was set: %v", token, resp.Cookies())
		}
		if resp, _ := c.get(t, "/builds"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("token %q: the builds page answered %s after a refused login", token, resp.Status)
		}
	}
}

func TestTheSessionCookieIsLockedDown(t *testing.T) {
	f := newFixture(t)
	for _, target := range []string{"http://ci.example/login", "https://ci.example/login"} {
		req := httptest.NewRequest(http.MethodPost, target, strings.NewReader("token="+adminToken+"&next=%2Fagents"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		f.web.ServeHTTP(rec, req)
		resp := rec.Result()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/agents" {
			t.Fatalf("%s: %s to %q", target, resp.Status, resp.Header.Get("Location"))
		}
		cookies := resp.Cookies()
		if len(cookies) != 1 {
			t.Fatalf("%s: cookies %v", target, cookies)
		}
		c := cookies[0]
		tls := strings.HasPrefix(target, "https")
		if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure != tls || c.MaxAge <= 0 {
			t.Errorf("%s: cookie %+v: want HttpOnly, SameSite=Strict, Path=/, Secure=%v and an expiry", target, c, tls)
		}
	}
}

func TestSessionsSurviveARestartAndExpire(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, f.viewer)
	info, err := os.Stat(filepath.Join(f.dir, "session.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("session.key: %v %v, want it 0600", info, err)
	}
	jarCookies := c.hc.Jar.Cookies(mustURL(t, f.http.URL))
	// A second dashboard on the same data dir (a restart) takes the cookie.
	now := time.Now()
	again, err := New(context.Background(), Config{Coordinator: f.c, Logs: f.logs, DataDir: f.dir, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	get := func() int {
		req := httptest.NewRequest(http.MethodGet, "/builds", nil)
		for _, ck := range jarCookies {
			req.AddCookie(ck)
		}
		rec := httptest.NewRecorder()
		again.ServeHTTP(rec, req)
		return rec.Code
	}
	if code := get(); code != http.StatusOK {
		t.Errorf("after a restart the session got %d, want 200", code)
	}
	now = now.Add(12*time.Hour + time.Minute)
	if code := get(); code != http.StatusSeeOther {
		t.Errorf("an expired session got %d, want 303 to the login page", code)
	}
	// A forged cookie is nobody.
	now = time.Now()
	for _, ck := range jarCookies {
		ck.Value = strings.Replace(ck.Value, ".", "x.", 1)
	}
	if code := get(); code != http.StatusSeeOther {
		t.Errorf("a tampered session got %d, want 303 to the login page", code)
	}
}

func TestLoginGoesBackToLocalPathsOnly(t *testing.T) {
	f := newFixture(t)
	for next, want := range map[string]string{
		"/builds/abc?x=1": "/builds/abc?x=1", "//evil.example/x": "/builds", "https://evil.example/": "/builds",
		"/\\evil.example": "/builds", "": "/builds", "/login": "/builds",
	} {
		resp := f.client(t, "").post(t, "/login", url.Values{"token": {adminToken}, "next": {next}})
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || got != want {
			t.Errorf("next %q: %s to %q, want %q", next, resp.Status, got, want)
		}
	}
}

func TestLogoutNeedsTheCSRFTokenAndEndsTheSession(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, adminToken)
	if resp := c.post(t, "/logout", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %s, want 403", resp.Status)
	}
	if resp := c.post(t, "/logout", url.Values{"csrf": {c.csrf(t)}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %s", resp.Status)
	}
	if resp, _ := c.get(t, "/builds"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after logout the builds page answered %s, want 303 to the login page", resp.Status)
	}
}

func TestCrossSitePostsAreRefused(t *testing.T) {
	f := newFixture(t)
	b := f.trigger(t, "r")
	c := f.client(t, adminToken)
	req, _ := http.NewRequest(http.MethodPost, f.http.URL+"/builds/"+b.ID+"/cancel", strings.NewReader(url.Values{"csrf": {c.csrf(t)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site cancel: %s, want 403", resp.Status)
	}
	if got := f.build(t, b.ID); got.State != "queued" {
		t.Errorf("the build is %s after a refused cancel", got.State)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
