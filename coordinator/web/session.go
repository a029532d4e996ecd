package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
)

// cookieName is the session cookie.
const cookieName = "monkeyci_session"

// session is who is signed in: the kind and short id of the token they
// signed in with, and the token their forms carry against cross-site
// requests. The zero session is nobody. It lives while its token does.
type session struct {
	Kind    coordinator.TokenKind
	Token   string
	CSRF    string
	Expires time.Time
}

// LoggedIn says someone is signed in.
func (s session) LoggedIn() bool { return s.Kind != "" }

// Admin says the session may change things (cancel, retry, unblock).
func (s session) Admin() bool { return s.Kind == coordinator.TokenAdmin }

// loadSessionKey reads the data dir's session key, making it on first
// start: sessions survive a restart, and each coordinator signs its own.
func loadSessionKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "session.key")
	key, err := os.ReadFile(path)
	if err == nil {
		if len(key) < 32 {
			return nil, fmt.Errorf("web: %s is %d bytes, want 32: remove it to make a new one", path, len(key))
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("web: reading the session key: %w", err)
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	// O_EXCL: of two starting at once, one writes and the other reads it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadSessionKey(dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("web: making the session key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("web: writing the session key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("web: writing the session key: %w", err)
	}
	return key, nil
}

// encode makes the cookie's value: the session's fields and their
// HMAC-SHA256 under the server's key.
func (s *Server) encode(ss session) string {
	payload := strings.Join([]string{"v2", string(ss.Kind), strconv.FormatInt(ss.Expires.Unix(), 10), ss.CSRF, ss.Token}, "|")
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + base64.RawURLEncoding.EncodeToString(s.sign(payload))
}

func (s *Server) sign(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// session returns the request's session, or nobody when its cookie is
// missing, forged or expired, or its token is revoked or expired: the
// token is looked up at every request.
func (s *Server) session(r *http.Request) session {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return session{}
	}
	p64, sig64, ok := strings.Cut(c.Value, ".")
	if !ok {
		return session{}
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p64)
	sig, err2 := base64.RawURLEncoding.DecodeString(sig64)
	if err1 != nil || err2 != nil || !hmac.Equal(sig, s.sign(string(payload))) {
		return session{}
	}
	f := strings.Split(string(payload), "|")
	if len(f) != 5 || f[0] != "v2" {
		return session{}
	}
	exp, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil || !s.now().Before(time.Unix(exp, 0)) {
		return session{}
	}
	kind := coordinator.TokenKind(f[1])
	if kind != coordinator.TokenAdmin && kind != coordinator.TokenViewer {
		return session{}
	}
	if s.c.TokenLive(r.Context(), f[4]) != kind {
		return session{}
	}
	return session{Kind: kind, Token: f[4], CSRF: f[3], Expires: time.Unix(exp, 0)}
}

// endOnRevoke cancels a stream's context when the token of its session
// is revoked (at once) or expires (within a minute): a session ends for
// its open streams too.
func (s *Server) endOnRevoke(ctx context.Context, cancel context.CancelFunc, ss session) {
	recheck := time.NewTicker(time.Minute)
	defer recheck.Stop()
	for {
		revoked := s.c.Revocations() // before the look, so none is missed
		if s.c.TokenLive(ctx, ss.Token) != ss.Kind {
			cancel()
			return
		}
		select {
		case <-revoked:
		case <-recheck.C:
		case <-ctx.Done():
			return
		}
	}
}

// setSession gives the browser the session's cookie: HttpOnly (no script
// reads it), SameSite=Strict (no other site's page sends it), Secure over
// TLS.
func (s *Server) setSession(w http.ResponseWriter, r *http.Request, ss session) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: s.encode(ss), Path: "/", Expires: ss.Expires, MaxAge: int(ss.Expires.Sub(s.now()).Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
}

// handler is a dashboard handler, given the request's session.
type handler func(w http.ResponseWriter, r *http.Request, ss session)

// page serves h to the signed in; anyone else is sent to the login page,
// which sends them back here.
func (s *Server) page(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := s.session(r)
		if !ss.LoggedIn() {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		h(w, r, ss)
	}
}

// stream serves h (a stream or a fragment that scripts fetch) to the
// signed in; anyone else gets 401.
func (s *Server) stream(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := s.session(r)
		if !ss.LoggedIn() {
			http.Error(w, "sign in at /login first", http.StatusUnauthorized)
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go s.endOnRevoke(ctx, cancel, ss)
		h(w, r.WithContext(ctx), ss)
	}
}

// maxForm bounds a form's body.
const maxForm = 64 << 10

// action serves a form's POST: signed in (else 401), with the session's
// CSRF token (else 403) and, when admin is set, by an admin (else 403).
func (s *Server) action(admin bool, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := s.session(r)
		if !ss.LoggedIn() {
			http.Error(w, "sign in at /login first", http.StatusUnauthorized)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "the form could not be read", http.StatusBadRequest)
			return
		}
		if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf")), []byte(ss.CSRF)) != 1 {
			http.Error(w, "the form's CSRF token is missing or wrong: reload the page", http.StatusForbidden)
			return
		}
		if admin && !ss.Admin() {
			http.Error(w, "a viewer may look, not change: sign in with an admin token", http.StatusForbidden)
			return
		}
		h(w, r, ss)
	}
}

type loginData struct {
	Session session
	Next    string
	Error   string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	next := localPath(r.URL.Query().Get("next"))
	if s.session(r).LoggedIn() {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "login", loginData{Next: next})
}

// login exchanges an admin or viewer token for a session.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "the form could not be read", http.StatusBadRequest)
		return
	}
	next := localPath(r.PostForm.Get("next"))
	tok, err := s.c.CheckToken(r.Context(), strings.TrimSpace(r.PostForm.Get("token")))
	kind := tok.Kind
	switch {
	case errors.Is(err, coordinator.ErrNotFound):
		s.render(w, http.StatusUnauthorized, "login", loginData{Next: next, Error: "That token is not known here."})
		return
	case err != nil:
		s.log.Error("checking a token", "error", err)
		s.render(w, http.StatusInternalServerError, "login", loginData{Next: next, Error: "The token could not be checked; try again."})
		return
	case kind != coordinator.TokenAdmin && kind != coordinator.TokenViewer:
		s.render(w, http.StatusForbidden, "login", loginData{Next: next, Error: "A " + string(kind) + " token cannot sign in: use an admin or viewer token."})
		return
	}
	csrf := make([]byte, 16)
	if _, err := rand.Read(csrf); err != nil {
		http.Error(w, "no randomness", http.StatusInternalServerError)
		return
	}
	s.setSession(w, r, session{Kind: kind, Token: tok.ID(), CSRF: hex.EncodeToString(csrf), Expires: s.now().Add(s.ttl)})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ session) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// localPath returns next when it is a path on this server, else /builds:
// the login page must not send anyone elsewhere.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/builds"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(u.Path, "/login") {
		return "/builds"
	}
	return u.RequestURI()
}
