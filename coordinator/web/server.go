// Package web is the coordinator's dashboard: server-rendered pages of
// builds, a build's jobs, timeline and logs, and the agents, kept live by
// server-sent events. Templates, styles and the little JavaScript there is
// are embedded: the dashboard fetches nothing from elsewhere.
//
// Every page and stream needs a session, made at /login from an admin or
// viewer token; only an admin session may change anything (cancel, retry,
// unblock), and every change is a POST carrying the session's CSRF token.
package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/coordinator/web/view"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Logs is what the dashboard reads of the log store (coordinator/logstore).
type Logs interface {
	// Size is a stream's stored size (0 when nothing is stored).
	Size(key logstore.Key) (int64, error)
	// ReadAt reads stored bytes at an offset, like io.ReaderAt.
	ReadAt(key logstore.Key, offset int64, p []byte) (int, error)
	// Sizes lists an attempt's streams with their sizes.
	Sizes(build string, attempt int) ([]logstore.Stream, error)
	// Follow copies a stream from an offset on, then what is written,
	// until ended is closed and all is copied, or ctx ends.
	Follow(ctx context.Context, key logstore.Key, from int64, w io.Writer, ended <-chan struct{}) error
}

var _ Logs = (*logstore.Store)(nil)

// Config is what the dashboard needs.
type Config struct {
	Coordinator *coordinator.Coordinator
	Logs        Logs
	// DataDir keeps session.key, the key that signs sessions, so they
	// survive a restart.
	DataDir string
	Logger  hclog.Logger
	// SessionTTL is how long a login lasts (default 12 h).
	SessionTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Server serves the dashboard.
type Server struct {
	c       *coordinator.Coordinator
	admin   *coordinator.AdminServer
	logs    Logs
	log     hclog.Logger
	now     func() time.Time
	ttl     time.Duration
	key     []byte
	pages   map[string]*template.Template
	handler http.Handler
	// done ends the streams when the coordinator stops (an http.Server's
	// Shutdown does not end requests by itself).
	done <-chan struct{}
}

// New makes the dashboard; its streams end when ctx does.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Coordinator == nil || cfg.Logs == nil {
		return nil, errors.New("web: a coordinator and a log store are required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("web: a data dir is required (for session.key)")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	key, err := loadSessionKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{
		c: cfg.Coordinator, admin: cfg.Coordinator.AdminServer(), logs: cfg.Logs, log: cfg.Logger,
		now: cfg.Now, ttl: cfg.SessionTTL, key: key, pages: pages, done: ctx.Done(),
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /view.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		_, _ = io.WriteString(w, view.GraphCSS+view.TimelineCSS+view.ANSICSS)
	})
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.action(false, s.logout))
	m.HandleFunc("GET /{$}", s.page(func(w http.ResponseWriter, r *http.Request, _ session) {
		http.Redirect(w, r, "/builds", http.StatusSeeOther)
	}))

	m.HandleFunc("GET /builds", s.page(s.buildsPage))
	m.HandleFunc("GET /builds/events", s.stream(s.buildsEvents))
	m.HandleFunc("GET /builds/{id}", s.page(s.buildPage))
	m.HandleFunc("GET /builds/{id}/events", s.stream(s.buildEvents))
	m.HandleFunc("POST /builds/trigger", s.action(true, s.trigger))
	m.HandleFunc("POST /builds/{id}/cancel", s.action(true, s.cancel))
	m.HandleFunc("POST /builds/{id}/retry", s.action(true, s.retry))
	m.HandleFunc("POST /builds/{id}/unblock", s.action(true, s.unblock))
	m.HandleFunc("GET /builds/{id}/artifacts/{artifact}", s.download(s.artifact))
	m.HandleFunc("GET /builds/{id}/logs/{job}", s.stream(s.logPage))
	m.HandleFunc("GET /builds/{id}/logs/{job}/follow", s.stream(s.followLog))

	m.HandleFunc("GET /agents", s.page(s.agentsPage))
	m.HandleFunc("GET /agents/events", s.stream(s.agentsEvents))
	// Beside the CSRF token of each form: POSTs from other origins are
	// refused outright (Sec-Fetch-Site, Origin), the login form's too.
	s.handler = http.NewCrossOriginProtection().Handler(m)
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Pages hold a CSRF token and admin buttons: never framed, never
	// cached, no scripts or styles but our own.
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
	s.handler.ServeHTTP(w, r)
}

// parsePages parses each page with the layout and the partials it shares.
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/partials.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"login", "builds", "build", "agents", "error"} {
		t, err := template.Must(base.Clone()).ParseFS(assets, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes a page through the layout. It renders into a buffer
// first, so a failing template gives a clean 500, not half a page.
func (s *Server) render(w http.ResponseWriter, status int, page string, data any) {
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("rendering a page", "page", page, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders one named template of a page (a section, the rows).
func (s *Server) fragment(page, name string, data any) (string, error) {
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, name, data); err != nil {
		return "", fmt.Errorf("rendering %s of %s: %w", name, page, err)
	}
	return buf.String(), nil
}

// errorPage says what went wrong, in a page.
func (s *Server) errorPage(w http.ResponseWriter, status int, sess session, msg string) {
	s.render(w, status, "error", struct {
		Session session
		Title   string
		Status  int
		Message string
	}{sess, http.StatusText(status), status, msg})
}
