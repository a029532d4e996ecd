package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/coordinator/sqlstore"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

const (
	adminToken = "admin-secret"
	joinToken  = "join-secret"
	// wait bounds every wait of a test: a stream read, an acknowledgement.
	wait = 20 * time.Second
)

// fixture is a real coordinator (SQLite store, log store, fleet gRPC on
// loopback) with the dashboard in front of it.
type fixture struct {
	c      *coordinator.Coordinator
	store  *sqlstore.Store
	logs   *logstore.Store // on disk: the coordinator's reads go on from there
	blobs  blob.Store      // where builds' artifacts are
	web    *Server
	http   *httptest.Server
	dir    string
	fleet  string // the fleet service's address
	viewer string // a viewer token
}

// newFixture starts the fixture; opts change the coordinator's config.
func newFixture(t testing.TB, opts ...func(*coordinator.Config)) *fixture {
	t.Helper()
	dir, store, logs := fleettest.Stores(t)
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr})
	ctx, cancel := context.WithCancel(context.Background())
	blobs, err := blob.OpenDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.Config{Store: store, Logs: logs, Blobs: blobs, AdminToken: adminToken, JoinToken: joinToken, Lease: time.Minute, Logger: log}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := coordinator.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(ctx)
	gs := grpc.NewServer(c.Interceptors()...)
	fleet.RegisterFleetServer(gs, c.FleetServer())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(l)
	t.Cleanup(gs.Stop)
	w, err := New(ctx, Config{Coordinator: c, Logs: c.Logs(), DataDir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(w)
	t.Cleanup(hs.Close)
	t.Cleanup(cancel) // first: it ends the streams hs.Close waits for
	viewer, err := c.AdminServer().CreateToken(ctx, &fleet.CreateTokenRequest{Kind: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{c: c, store: store, logs: logs, blobs: blobs, web: w, http: hs, dir: dir, fleet: l.Addr().String(), viewer: viewer.GetToken()}
}

// trigger queues a build of repo's main.
func (f *fixture) trigger(t *testing.T, repo string) coordinator.Build {
	t.Helper()
	return f.triggerOn(t, repo, "main")
}

// triggerOn queues a build of repo's branch.
func (f *fixture) triggerOn(t *testing.T, repo, branch string) coordinator.Build {
	t.Helper()
	b, err := f.c.Trigger(context.Background(), coordinator.Build{Repo: repo, Source: coordinator.Source{URL: "/src/" + repo, Branch: branch, Commit: "0123456789abcdef"}, Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) build(t *testing.T, id string) coordinator.Build {
	t.Helper()
	b, err := f.c.Build(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// client is a browser: a cookie jar, and redirects left to the test.
type client struct {
	base string
	hc   *http.Client
}

// client returns a browser signed in with token ("" for nobody).
func (f *fixture) client(t *testing.T, token string) *client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &client{base: f.http.URL, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if token != "" {
		resp := c.post(t, "/login", url.Values{"token": {token}})
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("signing in: %s", resp.Status)
		}
	}
	return c
}

// get returns the response and its body.
func (c *client) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := c.hc.Get(c.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func (c *client) post(t *testing.T, path string, form url.Values) *http.Response {
	t.Helper()
	resp, err := c.hc.PostForm(c.base+path, form)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrf is the session's CSRF token, as its pages carry it.
func (c *client) csrf(t *testing.T) string {
	t.Helper()
	_, body := c.get(t, "/builds")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the builds page")
	}
	return m[1]
}

// stream is a server-sent event stream being read.
type stream struct {
	resp *http.Response
	r    *bufio.Reader
}

// stream opens an event stream; reads fail once wait has passed.
func (c *client) stream(t *testing.T, path string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("GET %s: content type %q", path, ct)
	}
	return &stream{resp: resp, r: bufio.NewReader(resp.Body)}
}

// next reads the next event (comments skipped).
func (s *stream) next(t *testing.T) (name, data string) {
	t.Helper()
	var lines []string
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v (so far %q)", err, lines)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if len(lines) > 0 || name != "" {
				return name, strings.Join(lines, "\n")
			}
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			lines = append(lines, strings.TrimPrefix(line, "data: "))
		}
	}
}

// until reads events until one's data has want in it, and returns it.
func (s *stream) until(t *testing.T, want string) string {
	t.Helper()
	for {
		_, data := s.next(t)
		if strings.Contains(data, want) {
			return data
		}
	}
}

// sections decodes a live view's message.
func sections(t *testing.T, data string) map[string]string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatalf("%v: %q", err, data)
	}
	return m
}

// agent is a fake agent speaking the fleet protocol by hand.
type agent struct {
	*fleettest.Agent
	seq map[string]int64
	id  string
}

// agent joins an agent of 4 CPUs that pauses waiting scripts.
func (f *fixture) agent(t *testing.T, name string) *agent {
	t.Helper()
	a := &agent{Agent: fleettest.Dial(t, f.fleet), seq: map[string]int64{}}
	h := fleettest.Hello(name, joinToken, &fleet.Capacity{MilliCpus: 4000, Memory: 16 << 30})
	h.Pauses, h.Labels = true, map[string]string{"os": "linux"}
	a.id = a.Join(t, h)
	return a
}

// recv waits for a message that match accepts.
func (a *agent) recv(t *testing.T, match func(*fleet.CoordinatorMessage) bool) *fleet.CoordinatorMessage {
	t.Helper()
	m, err := a.RecvUntil(t, match)
	if err != nil {
		t.Fatalf("the agent's stream ended: %v", err)
	}
	return m
}

// assigned waits for the build's assignment.
func (a *agent) assigned(t *testing.T, id string) {
	t.Helper()
	a.recv(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign().GetBuild().GetBuildId() == id })
}

// events reports events of the build's first attempt and waits until
// they are stored.
func (a *agent) events(t *testing.T, id string, evs ...events.Event) {
	t.Helper()
	ba := &fleet.BuildAttempt{BuildId: id, Attempt: 1}
	for _, e := range evs {
		a.seq[id]++
		a.Send(t, fleettest.Event(t, ba, a.seq[id], e))
	}
	want := a.seq[id]
	a.recv(t, func(m *fleet.CoordinatorMessage) bool {
		return m.GetAck().GetBuild().GetBuildId() == id && m.GetAck().GetSeq() >= want
	})
}

// done ends the build's first attempt and waits until it is stored.
func (a *agent) done(t *testing.T, id string, result events.Result) {
	t.Helper()
	a.Send(t, fleettest.Done(&fleet.BuildAttempt{BuildId: id, Attempt: 1}, result, a.seq[id]))
	a.recv(t, func(m *fleet.CoordinatorMessage) bool {
		return m.GetAck().GetBuild().GetBuildId() == id && m.GetAck().GetDone()
	})
}

// running triggers a build and has the agent take it.
func (f *fixture) running(t *testing.T, a *agent, repo string) coordinator.Build {
	t.Helper()
	b := f.trigger(t, repo)
	a.assigned(t, b.ID)
	return f.build(t, b.ID)
}

// ev makes an event at t0 + d.
func ev(typ events.Type, job string, d time.Duration) events.Event {
	return events.Event{Type: typ, Job: job, Time: t0.Add(d)}
}

var t0 = time.Date(2025, 3, 4, 10, 0, 0, 0, time.UTC)
