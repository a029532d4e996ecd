package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/forge"
)

const sha = "0123456789abcdef0123456789abcdef01234567"

// wait is how long a test waits for something that should be prompt.
const wait = 10 * time.Second

// seen is one request as a fake forge received it.
type seen struct {
	Method string
	Path   string // escaped, as sent
	Header http.Header
	Body   map[string]any
}

func decode(t *testing.T, r *http.Request) seen {
	t.Helper()
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		t.Errorf("request body: %v", err)
	}
	return seen{Method: r.Method, Path: r.URL.EscapedPath(), Header: r.Header.Clone(), Body: body}
}

// recorder is a fake forge that records requests and answers 201.
func recorder(t *testing.T) (*httptest.Server, chan seen) {
	got := make(chan seen, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- decode(t, r)
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":1}`)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

// fastClient retries at once and has no timeout of its own: a request ends
// when its fake forge answers or its context ends, never by a timer racing
// the test (whose retry would reach the forge a second time).
func fastClient() *Client { return &Client{HTTP: &http.Client{}, Backoff: time.Millisecond} }

// await fails the test unless c is ready within wait.
func await(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(wait):
		t.Fatal(what)
	}
}

// TestSendPerForge checks each forge's request as its API documents it,
// for every State.
func TestSendPerForge(t *testing.T) {
	forges := []struct {
		kind   forge.Kind
		prefix string // the API base's path
		repo   string
		path   string
		header map[string]string
		states map[State]string
		body   func(state string) map[string]any
	}{
		{
			kind:   forge.GitHub,
			prefix: "/api/v3",
			repo:   "octo/hello",
			path:   "/api/v3/repos/octo/hello/statuses/" + sha,
			header: map[string]string{
				"Authorization":        "Bearer tok",
				"Accept":               "application/vnd.github+json",
				"X-GitHub-Api-Version": "2022-11-28",
				"User-Agent":           "monkeyci",
				"Content-Type":         "application/json",
			},
			states: map[State]string{Pending: "pending", Running: "pending", Success: "success",
				Failure: "failure", Error: "error", Canceled: "error"},
			body: func(state string) map[string]any {
				return map[string]any{"state": state, "target_url": "https://ci.example.com/b/1",
					"description": "build 1", "context": "monkeyci"}
			},
		},
		{
			kind:   forge.GitLab,
			prefix: "/api/v4",
			repo:   "group/sub/hello",
			path:   "/api/v4/projects/group%2Fsub%2Fhello/statuses/" + sha,
			header: map[string]string{"PRIVATE-TOKEN": "tok", "Content-Type": "application/json"},
			states: map[State]string{Pending: "pending", Running: "running", Success: "success",
				Failure: "failed", Error: "failed", Canceled: "canceled"},
			body: func(state string) map[string]any {
				return map[string]any{"state": state, "target_url": "https://ci.example.com/b/1",
					"description": "build 1", "name": "monkeyci"}
			},
		},
		{
			kind:   forge.Gitea,
			prefix: "/api/v1",
			repo:   "octo/hello",
			path:   "/api/v1/repos/octo/hello/statuses/" + sha,
			header: map[string]string{"Authorization": "token tok", "Content-Type": "application/json"},
			states: map[State]string{Pending: "pending", Running: "pending", Success: "success",
				Failure: "failure", Error: "error", Canceled: "error"},
			body: func(state string) map[string]any {
				return map[string]any{"state": state, "target_url": "https://ci.example.com/b/1",
					"description": "build 1", "context": "monkeyci"}
			},
		},
		{
			kind:   forge.Bitbucket,
			prefix: "/2.0",
			repo:   "team/hello",
			path:   "/2.0/repositories/team/hello/commit/" + sha + "/statuses/build",
			header: map[string]string{"Authorization": "Bearer tok", "Content-Type": "application/json"},
			states: map[State]string{Pending: "INPROGRESS", Running: "INPROGRESS", Success: "SUCCESSFUL",
				Failure: "FAILED", Error: "FAILED", Canceled: "STOPPED"},
			body: func(state string) map[string]any {
				return map[string]any{"key": "monkeyci", "state": state, "url": "https://ci.example.com/b/1",
					"name": "monkeyci", "description": "build 1"}
			},
		},
	}
	for _, f := range forges {
		srv, got := recorder(t)
		for _, state := range []State{Pending, Running, Success, Failure, Error, Canceled} {
			t.Run(fmt.Sprintf("%s/%s", f.kind, state), func(t *testing.T) {
				target := Target{Kind: f.kind, APIURL: srv.URL + f.prefix + "/", Repo: f.repo, Token: "tok"}
				st := Status{Commit: sha, State: state, URL: "https://ci.example.com/b/1",
					Description: "build 1", Context: "monkeyci"}
				if err := fastClient().Send(t.Context(), target, st); err != nil {
					t.Fatalf("Send: %v", err)
				}
				r := <-got
				if r.Method != http.MethodPost {
					t.Errorf("method %s, want POST", r.Method)
				}
				if r.Path != f.path {
					t.Errorf("path %s, want %s", r.Path, f.path)
				}
				for k, v := range f.header {
					if g := r.Header.Get(k); g != v {
						t.Errorf("header %s: %q, want %q", k, g, v)
					}
				}
				want := f.body(f.states[state])
				if !reflect.DeepEqual(r.Body, want) {
					t.Errorf("body %v, want %v", r.Body, want)
				}
			})
		}
	}
}

// roundTrip answers requests without a network.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func answer(code int, body string) *http.Response {
	return &http.Response{StatusCode: code, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(body))}
}

func TestSendDefaultAPIURL(t *testing.T) {
	for _, tc := range []struct {
		kind forge.Kind
		repo string
		want string
	}{
		{forge.GitHub, "o/r", "https://api.github.com/repos/o/r/statuses/" + sha},
		{forge.GitLab, "g/r", "https://gitlab.com/api/v4/projects/g%2Fr/statuses/" + sha},
		{forge.Bitbucket, "w/r", "https://api.bitbucket.org/2.0/repositories/w/r/commit/" + sha + "/statuses/build"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			var got string
			c := &Client{HTTP: &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
				got = r.URL.String()
				return answer(201, "{}"), nil
			})}}
			err := c.Send(t.Context(), Target{Kind: tc.kind, Repo: tc.repo, Token: "tok"},
				Status{Commit: sha, State: Success, URL: "https://ci/b/1"})
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			if got != tc.want {
				t.Errorf("URL %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSendDefaultsAndTruncation(t *testing.T) {
	srv, got := recorder(t)
	long := strings.Repeat("é", 300)
	err := fastClient().Send(t.Context(), Target{Kind: forge.GitHub, APIURL: srv.URL, Repo: "o/r", Token: "tok"},
		Status{Commit: sha[:7], State: Success, Description: long})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := <-got
	if r.Path != "/repos/o/r/statuses/"+sha[:7] {
		t.Errorf("path %s", r.Path)
	}
	d, _ := r.Body["description"].(string)
	if n := len([]rune(d)); n != 140 || !strings.HasPrefix(long, strings.TrimSuffix(d, "…")) {
		t.Errorf("description of %d characters: %q", n, d)
	}
	if r.Body["context"] != "monkeyci" {
		t.Errorf("context %v, want the default monkeyci", r.Body["context"])
	}
	if _, ok := r.Body["target_url"]; ok {
		t.Errorf("empty target_url sent: %v", r.Body)
	}
}

func TestSendValidates(t *testing.T) {
	good := Target{Kind: forge.GitHub, Repo: "o/r", Token: "tok"}
	ok := Status{Commit: sha, State: Success, URL: "https://ci/b/1"}
	for _, tc := range []struct {
		name   string
		target func(*Target)
		status func(*Status)
		field  string
	}{
		{"unknown forge", func(t *Target) { t.Kind = "svn" }, nil, "Target.Kind"},
		{"gitea without API", func(t *Target) { t.Kind = forge.Gitea }, nil, "Target.APIURL"},
		{"API not http", func(t *Target) { t.APIURL = "ftp://x" }, nil, "Target.APIURL"},
		{"repo without owner", func(t *Target) { t.Repo = "r" }, nil, "Target.Repo"},
		{"repo too deep", func(t *Target) { t.Repo = "a/b/c" }, nil, "Target.Repo"},
		{"repo empty part", func(t *Target) { t.Repo = "a/" }, nil, "Target.Repo"},
		{"repo dot-dot", func(t *Target) { t.Repo = "../r" }, nil, "Target.Repo"},
		{"gitlab repo flat", func(t *Target) { t.Kind, t.Repo = forge.GitLab, "r" }, nil, "Target.Repo"},
		{"bitbucket repo deep", func(t *Target) { t.Kind, t.Repo = forge.Bitbucket, "w/r/x" }, nil, "Target.Repo"},
		{"no token", func(t *Target) { t.Token = "" }, nil, "Target.Token"},
		{"short commit", nil, func(s *Status) { s.Commit = "abc123" }, "Status.Commit"},
		{"long commit", nil, func(s *Status) { s.Commit = sha + "0" }, "Status.Commit"},
		{"commit not hex", nil, func(s *Status) { s.Commit = "main" + sha[4:] }, "Status.Commit"},
		{"unknown state", nil, func(s *Status) { s.State = "done" }, "Status.State"},
		{"bitbucket without URL", func(t *Target) { t.Kind = forge.Bitbucket }, func(s *Status) { s.URL = "" }, "Status.URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, st := good, ok
			if tc.target != nil {
				tc.target(&target)
			}
			if tc.status != nil {
				tc.status(&st)
			}
			c := &Client{HTTP: &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
				t.Errorf("request sent: %s", r.URL)
				return answer(201, ""), nil
			})}}
			err := c.Send(t.Context(), target, st)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %v, want one naming %s", err, tc.field)
			}
		})
	}
	// GitLab allows nested groups.
	target := Target{Kind: forge.GitLab, Repo: "a/b/c/d", Token: "tok"}
	if err := validate(target, ok); err != nil {
		t.Errorf("nested GitLab group: %v", err)
	}
}

// sequenced is a fake forge answering requests in turn from codes (the
// last one repeating), each with the given headers.
func sequenced(t *testing.T, header http.Header, codes ...int) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		code := codes[min(i, len(codes)-1)]
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"message":"answer %d"}`, code)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func githubAt(url string) Target {
	return Target{Kind: forge.GitHub, APIURL: url, Repo: "o/r", Token: "tok"}
}

var success = Status{Commit: sha, State: Success}

func TestSendRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		header   http.Header
		codes    []int
		client   Client
		requests int32
		errs     []string // in the error; none for success
	}{
		{name: "502 twice then 201", codes: []int{502, 502, 201}, requests: 3},
		{name: "408 retried", codes: []int{408, 201}, requests: 2},
		{name: "401 not retried", codes: []int{401, 201}, requests: 1,
			errs: []string{"github", "o/r", "HTTP 401", `"answer 401"`}},
		{name: "422 not retried", codes: []int{422}, requests: 1, errs: []string{"HTTP 422"}},
		{name: "gives up after Attempts", codes: []int{503}, client: Client{Attempts: 3}, requests: 3,
			errs: []string{"after 3 attempt", "HTTP 503", "answer 503"}},
		// An hour's backoff would hang the test: Retry-After must win.
		{name: "429 honours Retry-After", header: http.Header{"Retry-After": {"0"}},
			codes: []int{429, 201}, client: Client{Backoff: time.Hour}, requests: 2},
		{name: "GitHub's rate-limit 403 honours Retry-After", header: http.Header{"Retry-After": {"0"}},
			codes: []int{403, 201}, client: Client{Backoff: time.Hour}, requests: 2},
		{name: "other 403 not retried", codes: []int{403, 201}, requests: 1, errs: []string{"HTTP 403"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := sequenced(t, tc.header, tc.codes...)
			c := tc.client
			if c.Backoff == 0 {
				c.Backoff = time.Millisecond
			}
			// Bounded, so that a Retry-After not honoured fails, not hangs.
			ctx, cancel := context.WithTimeout(t.Context(), wait)
			defer cancel()
			err := c.Send(ctx, githubAt(srv.URL), success)
			if len(tc.errs) == 0 && err != nil {
				t.Errorf("Send: %v", err)
			}
			if len(tc.errs) > 0 && err == nil {
				t.Errorf("Send succeeded, want an error")
			}
			for _, s := range tc.errs {
				if err != nil && !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if got := n.Load(); got != tc.requests {
				t.Errorf("%d requests, want %d", got, tc.requests)
			}
		})
	}
}

func TestSendRetriesNetworkErrors(t *testing.T) {
	var n int
	c := &Client{Backoff: time.Millisecond, HTTP: &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		if n++; n < 3 {
			return nil, errors.New("connection reset")
		}
		return answer(201, ""), nil
	})}}
	if err := c.Send(t.Context(), githubAt("https://ghe.example.com/api/v3"), success); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
}

func TestSendBodyExcerpt(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, strings.Repeat("x", 1000))
	}))
	t.Cleanup(srv.Close)
	err := fastClient().Send(t.Context(), githubAt(srv.URL), success)
	if err == nil {
		t.Fatal("Send succeeded")
	}
	if n := strings.Count(err.Error(), "x"); n != 200 {
		t.Errorf("error keeps %d bytes of the body, want 200: %v", n, err)
	}
	var herr *httpError
	if !errors.As(err, &herr) || herr.Code != http.StatusBadRequest {
		t.Errorf("error %v does not wrap the HTTP answer", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
	} {
		d, ok := retryAfter(tc.v, now)
		if d != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.v, d, ok, tc.want, tc.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{Backoff: time.Second}
	for attempt, base := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 30 * time.Second, 60: 30 * time.Second} {
		for range 20 {
			if d := c.backoff(attempt); d < base/2 || d > base {
				t.Errorf("backoff(%d) = %v, want within [%v, %v]", attempt, d, base/2, base)
			}
		}
	}
}

func TestSendStopsWhenContextEnds(t *testing.T) {
	t.Run("while backing off", func(t *testing.T) {
		srv, n := sequenced(t, nil, 503)
		ctx, cancel := context.WithCancel(t.Context())
		// Send logs each retry just before it waits: cancel then.
		retrying := &signal{c: make(chan struct{})}
		go func() { <-retrying.c; cancel() }()
		c := &Client{Backoff: time.Hour, Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: retrying})}
		errc := make(chan error, 1)
		go func() { errc <- c.Send(ctx, githubAt(srv.URL), success) }()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "HTTP 503") {
				t.Errorf("error %v, want context.Canceled and the last answer", err)
			}
		case <-time.After(wait):
			t.Fatal("Send did not stop when its context ended")
		}
		if got := n.Load(); got != 1 {
			t.Errorf("%d requests, want 1", got)
		}
	})
	t.Run("while a request hangs", func(t *testing.T) {
		// A retry after a network error reaches the handler again: only
		// the first arrival closes the channel.
		var once sync.Once
		arrived := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			once.Do(func() { close(arrived) })
			stuck(t, r)
		}))
		t.Cleanup(srv.Close)
		// The server's own client: no timeout (only ctx ends the request)
		// and no connections shared with other tests.
		c := &Client{HTTP: srv.Client(), Backoff: time.Millisecond}
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- c.Send(ctx, githubAt(srv.URL), success) }()
		select {
		case <-arrived:
		case err := <-errc:
			t.Fatalf("Send returned before its request arrived: %v", err)
		case <-time.After(wait):
			t.Fatal("the request did not arrive")
		}
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v, want context.Canceled", err)
			}
		case <-time.After(wait):
			t.Fatal("Send did not stop when its context ended")
		}
	})
}

// stuck holds a request until its client gives up or the test ends. The
// body is read first: only then does the server notice a client leaving.
func stuck(t *testing.T, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-t.Context().Done():
	case <-time.After(2 * wait): // never hold the test binary, whatever failed
	}
}

// signal is a log output that closes c at the first line written.
type signal struct {
	once sync.Once
	c    chan struct{}
}

func (s *signal) Write(p []byte) (int, error) {
	s.once.Do(func() { close(s.c) })
	return len(p), nil
}

// commitOf is a distinct commit for each i.
func commitOf(i int) string { return fmt.Sprintf("%040x", i) }

func quiet() hclog.Logger { return hclog.NewNullLogger() }

// closedAtEnd closes r when the test ends, however it ends, so that no
// worker outlives it (a second Close is harmless).
func closedAtEnd(t *testing.T, r *Reporter) *Reporter {
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r.Close(ctx)
	})
	return r
}

func TestReporterKeepsOrderPerCommit(t *testing.T) {
	var (
		mu  sync.Mutex
		got = map[string][]int{} // commit -> sequence numbers, as received
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := decode(t, r)
		var seq int
		fmt.Sscanf(s.Body["description"].(string), "seq %d", &seq)
		commit := s.Path[strings.LastIndex(s.Path, "/")+1:]
		mu.Lock()
		got[commit] = append(got[commit], seq)
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)

	r := closedAtEnd(t, NewReporter(fastClient(), quiet()))
	const commits, perCommit = 5, 40
	states := []State{Pending, Running, Success, Failure, Error, Canceled}
	for i := range perCommit {
		for c := range commits {
			r.Report(githubAt(srv.URL), Status{Commit: commitOf(c), State: states[i%len(states)],
				Description: fmt.Sprintf("seq %d", i)})
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for c := range commits {
		seqs := got[commitOf(c)]
		if len(seqs) != perCommit || !slices.IsSorted(seqs) {
			t.Errorf("commit %d: received %v, want 0..%d in order", c, seqs, perCommit-1)
		}
	}
}

func TestReporterNeverBlocks(t *testing.T) {
	release := make(chan struct{})
	var (
		mu  sync.Mutex
		got = map[string]bool{}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so the server notices a client leaving
		select {
		case <-release:
		case <-r.Context().Done():
			return
		case <-t.Context().Done():
			return
		}
		path := r.URL.Path
		mu.Lock()
		got[path[strings.LastIndex(path, "/")+1:]] = true
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)

	r := closedAtEnd(t, NewReporter(fastClient(), quiet()))
	const n = 2000
	reported := make(chan struct{})
	go func() {
		for i := range n {
			r.Report(githubAt(srv.URL), Status{Commit: commitOf(i), State: Running})
		}
		close(reported)
	}()
	await(t, reported, "Report blocked on a stuck forge")
	close(release)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	// The queue kept the newest reports, dropping the oldest; those in
	// flight when it filled were sent too.
	for i := n - defaultQueue; i < n; i++ {
		if !got[commitOf(i)] {
			t.Fatalf("report %d, among the newest %d, was not sent", i, defaultQueue)
		}
	}
	if len(got) > defaultQueue+defaultWorkers {
		t.Errorf("%d reports sent, want at most the queue's %d and %d in flight", len(got), defaultQueue, defaultWorkers)
	}
}

func TestReporterCloseDrains(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)

	r := closedAtEnd(t, NewReporter(fastClient(), quiet()))
	for i := range 100 {
		r.Report(githubAt(srv.URL), Status{Commit: commitOf(i % 7), State: Success})
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := n.Load(); got != 100 {
		t.Errorf("%d reports sent by Close's return, want 100", got)
	}
	// Reports after Close are dropped, not sent nor panicking.
	r.Report(githubAt(srv.URL), Status{Commit: sha, State: Success})
	if err := r.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := n.Load(); got != 100 {
		t.Errorf("%d reports sent, want 100: a report after Close was sent", got)
	}
}

func TestReporterCloseGivesUp(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		stuck(t, r)
	}))
	t.Cleanup(srv.Close)

	r := closedAtEnd(t, NewReporter(fastClient(), quiet()))
	for range 10 {
		r.Report(githubAt(srv.URL), Status{Commit: sha, State: Running})
	}
	await(t, arrived, "the first report did not arrive")
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- r.Close(ctx) }()
	select {
	case err := <-closed:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "10 report(s) abandoned") {
			t.Errorf("Close: %v, want the deadline and 10 reports abandoned", err)
		}
	case <-time.After(wait):
		t.Fatal("Close did not return when its context ended")
	}
}

func TestReporterDropsOldest(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	var (
		mu  sync.Mutex
		got []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-release:
		case <-t.Context().Done():
			return
		}
		s := decode(t, r)
		mu.Lock()
		got = append(got, s.Body["description"].(string))
		mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)

	// One worker, a queue of 3, one commit: report 0 is in flight, and of
	// those queued behind it only the newest 3 are kept, in order.
	r := closedAtEnd(t, newReporter(fastClient(), quiet(), 3, 1))
	report := func(i int) {
		r.Report(githubAt(srv.URL), Status{Commit: sha, State: Running, Description: fmt.Sprint(i)})
	}
	report(0)
	await(t, arrived, "report 0 did not arrive")
	for i := 1; i < 10; i++ {
		report(i)
	}
	close(release)
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"0", "7", "8", "9"}; !slices.Equal(got, want) {
		t.Errorf("sent %v, want %v", got, want)
	}
}
