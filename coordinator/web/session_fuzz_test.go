package web

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
)

// A session cookie is the client's input: whatever it holds, reading it
// never panics, and it signs in only with a payload this server signed.
func FuzzSessionCookie(f *testing.F) {
	fx := newFixture(f)
	sum := sha256.Sum256([]byte(fx.viewer))
	live := coordinator.Token{Hash: hex.EncodeToString(sum[:])}.ID()
	valid := fx.web.encode(session{Kind: "viewer", Token: live, CSRF: "c", Expires: time.Now().Add(time.Hour)})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.AddCookie(&http.Cookie{Name: cookieName, Value: valid})
	if !fx.web.session(req).LoggedIn() {
		f.Fatal("the seed's valid cookie does not sign in")
	}
	for _, seed := range []string{valid, valid + "x", strings.Replace(valid, ".", "..", 1), "", ".", "djE.", "v2|admin|9999999999|c|id"} {
		f.Add(seed)
	}
	payload := func(value string) string {
		p64, _, _ := strings.Cut(value, ".")
		p, _ := base64.RawURLEncoding.DecodeString(p64)
		return string(p)
	}
	f.Fuzz(func(t *testing.T, value string) {
		req := httptest.NewRequest(http.MethodGet, "/builds", nil)
		req.AddCookie(&http.Cookie{Name: cookieName, Value: value})
		ss := fx.web.session(req)
		if ss.LoggedIn() && payload(value) != payload(fx.web.encode(ss)) {
			t.Errorf("cookie %q signed in as %+v without this server's signature", value, ss)
		}
	})
}
