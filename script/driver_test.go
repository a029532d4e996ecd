package script

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/jobapi"
	monkeyci "github.com/monkeyci/monkeyci/sdk"
)

// call is one job API call the fake answered, in the order it answered.
type call struct {
	kind   string            // "start", "skip", "await" or "unblock"
	id     string            // start, skip: the job; await, unblock: the job it returned
	env    map[string]string // start: the job's env as sent
	job    *jobapi.JobSpec   // start: the job as sent
	reason string            // skip
	ids    []string          // await, unblock: the ids asked for
}

func (c call) String() string {
	switch c.kind {
	case "start":
		return "start " + c.id
	case "skip":
		return fmt.Sprintf("skip %s (%s)", c.id, c.reason)
	case "unblock":
		return fmt.Sprintf("unblock %v -> %s", c.ids, c.id)
	case "stop":
		return "stop " + c.id
	case "require":
		return fmt.Sprintf("require %v", c.ids)
	default:
		return fmt.Sprintf("await %v -> %s", c.ids, c.id)
	}
}

// fakeAPI is an agent's job API: a job is finished as soon as it was
// started, with the status the test gives it (success by default), unless
// the test holds it (it then runs until released). An await returns the
// first asked-for job that is finished and not yet reported, waiting while
// all of them are held. Unblocks are what the test gave, as the agent
// records them: an await of one returns the first given that it asks for,
// or waits. With canUnblock false, nobody can give one (noUnblock: a local
// run's FailedPrecondition by default).
type fakeAPI struct {
	jobapi.UnimplementedJobAPIServer
	token      string
	params     map[string]string
	status     map[string]string // job id -> "success", "failure", ...
	canUnblock bool
	noUnblock  codes.Code

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced at every change below
	calls    []call
	refused  int // calls without the right token
	started  map[string]bool
	reported map[string]bool
	held     map[string]bool
	given    []string       // unblocks, in the order given
	waiting  map[string]int // awaits waiting now, by kind ("await", "unblock")
}

func newFake(token string, params, status map[string]string) *fakeAPI {
	return &fakeAPI{token: token, params: params, status: status, noUnblock: codes.FailedPrecondition,
		changed: make(chan struct{}), started: map[string]bool{}, reported: map[string]bool{}, held: map[string]bool{}, waiting: map[string]int{}}
}

// auth refuses every call whose metadata does not carry the build's token.
func (f *fakeAPI) auth(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+f.token {
		f.mu.Lock()
		f.refused++
		f.mu.Unlock()
		return nil, status.Error(codes.Unauthenticated, "bad or missing token")
	}
	return h(ctx, req)
}

func (f *fakeAPI) GetParams(context.Context, *jobapi.GetParamsRequest) (*jobapi.GetParamsResponse, error) {
	return &jobapi.GetParamsResponse{Params: f.params}, nil
}

func (f *fakeAPI) StartJob(_ context.Context, req *jobapi.StartJobRequest) (*jobapi.StartJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := req.GetJob().GetId()
	if id == "" || f.started[id] {
		return nil, status.Errorf(codes.InvalidArgument, "job %q: no id, or started twice", id)
	}
	f.started[id] = true
	f.calls = append(f.calls, call{kind: "start", id: id, env: maps.Clone(req.GetJob().GetEnv()), job: req.GetJob()})
	f.changeLocked()
	return &jobapi.StartJobResponse{}, nil
}

// StopJob stops a service: a held one ends now.
func (f *fakeAPI) StopJob(_ context.Context, req *jobapi.StopJobRequest) (*jobapi.StopJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{kind: "stop", id: req.GetId()})
	delete(f.held, req.GetId())
	f.changeLocked()
	return &jobapi.StopJobResponse{}, nil
}

// Require takes amd, as an amd agent, and refuses the rest.
func (f *fakeAPI) Require(_ context.Context, req *jobapi.RequireRequest) (*jobapi.RequireResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{kind: "require", ids: req.GetArch()})
	for _, a := range req.GetArch() {
		if a != "amd" {
			return nil, status.Errorf(codes.FailedPrecondition, "this agent runs amd jobs, not %s", a)
		}
	}
	return &jobapi.RequireResponse{}, nil
}

func (f *fakeAPI) SkipJob(_ context.Context, req *jobapi.SkipJobRequest) (*jobapi.SkipJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{kind: "skip", id: req.GetId(), reason: req.GetReason()})
	return &jobapi.SkipJobResponse{}, nil
}

func (f *fakeAPI) AwaitJobs(ctx context.Context, req *jobapi.AwaitJobsRequest) (*jobapi.AwaitJobsResponse, error) {
	ids := slices.Clone(req.GetIds())
	if len(ids) == 0 {
		return nil, status.Error(codes.InvalidArgument, "await of no jobs")
	}
	if !req.GetAny() {
		return nil, status.Error(codes.InvalidArgument, "the driver is expected to await any, not all")
	}
	f.mu.Lock()
	for _, id := range ids {
		// An await that names a job never started, or one whose end the
		// driver already took, is a driver bug: fail it.
		if !f.started[id] || f.reported[id] {
			f.mu.Unlock()
			return nil, status.Errorf(codes.FailedPrecondition, "await of job %q: never started or already reported", id)
		}
	}
	f.mu.Unlock()
	id, err := f.wait(ctx, "await", func() string {
		for _, id := range ids {
			if !f.held[id] {
				return id
			}
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reported[id] = true
	st := f.status[id]
	if st == "" {
		st = string(events.Success)
	}
	f.calls = append(f.calls, call{kind: "await", id: id, ids: ids})
	return &jobapi.AwaitJobsResponse{Results: []*jobapi.JobResult{{Id: id, Status: st}}}, nil
}

func (f *fakeAPI) AwaitUnblock(ctx context.Context, req *jobapi.AwaitUnblockRequest) (*jobapi.AwaitUnblockResponse, error) {
	if !f.canUnblock {
		return nil, status.Error(f.noUnblock, "nobody can unblock a job here")
	}
	ids := req.GetIds()
	id, err := f.wait(ctx, "unblock", func() string {
		for _, id := range f.given {
			if slices.Contains(ids, id) {
				return id
			}
		}
		return ""
	})
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call{kind: "unblock", id: id, ids: slices.Clone(ids)})
	return &jobapi.AwaitUnblockResponse{Id: id}, nil
}

// wait returns what answer finds (under the lock), waiting for a change
// until it finds something or ctx ends; it counts itself waiting by kind.
func (f *fakeAPI) wait(ctx context.Context, kind string, answer func() string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	counted := false
	defer func() {
		if counted {
			f.waiting[kind]--
			f.changeLocked()
		}
	}()
	for {
		if id := answer(); id != "" {
			return id, nil
		}
		if !counted {
			counted = true
			f.waiting[kind]++
			f.changeLocked()
		}
		changed := f.changed
		f.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
		}
		f.mu.Lock()
		if ctx.Err() != nil {
			return "", status.FromContextError(ctx.Err()).Err()
		}
	}
}

func (f *fakeAPI) changeLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// hold keeps job running until release.
func (f *fakeAPI) hold(job string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held[job] = true
}

func (f *fakeAPI) release(job string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.held, job)
	f.changeLocked()
}

// give is a person's unblock of job.
func (f *fakeAPI) give(job string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.given = append(f.given, job)
	f.changeLocked()
}

// until waits until cond holds of the fake's state: n awaits of a kind
// waiting, say.
func (f *fakeAPI) until(t *testing.T, what string, cond func(f *fakeAPI) bool) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		f.mu.Lock()
		ok, changed := cond(f), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("the driver never came to %s", what)
		}
	}
}

func (f *fakeAPI) refusals() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

func (f *fakeAPI) log() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// serve runs f on a unix socket and returns the socket's path. The
// directory is short: a socket path must stay under 107 bytes, and
// t.TempDir() can be longer.
func serve(t *testing.T, f *fakeAPI) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "drv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "api.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(f.auth))
	jobapi.RegisterJobAPIServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return sock
}

func mustPlan(t *testing.T, yaml string) *pipeline.Plan {
	t.Helper()
	jobs, err := pipeline.Parse("build.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	plan, err := pipeline.Validate(jobs)
	if err != nil {
		t.Fatalf("validate: %v", err)
	}
	return plan
}

// connect serves f and dials it over a real gRPC connection, as token.
func connect(t *testing.T, f *fakeAPI, token string) jobapi.JobAPIClient {
	t.Helper()
	sock := serve(t, f)
	c, err := monkeyci.Dial(context.Background(), "unix://"+sock, token)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.API()
}

// drive runs Drive against f, as token, with a deadline so that a bug
// fails the test rather than hangs it.
func drive(t *testing.T, f *fakeAPI, token string, plan *pipeline.Plan) (events.Result, error) {
	t.Helper()
	api := connect(t, f, token)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return Drive(ctx, api, plan)
}

const diamond = `
- id: a
  image: alpine
  script: [echo a]
- id: b
  image: alpine
  script: [echo b]
  dependencies: [a]
- id: c
  image: alpine
  script: [echo c]
  dependencies: [a]
- id: d
  image: alpine
  script: [echo d]
  dependencies: [b, c]
`

// index returns where the first call matching kind and id is in log, -1
// when none does.
func index(log []call, kind, id string) int {
	return slices.IndexFunc(log, func(c call) bool { return c.kind == kind && c.id == id })
}

func ofKind(log []call, kind string) []call {
	var out []call
	for _, c := range log {
		if c.kind == kind {
			out = append(out, c)
		}
	}
	return out
}

func ids(cs []call) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.id)
	}
	return out
}

func TestDriveDiamond(t *testing.T) {
	tests := []struct {
		name   string
		status map[string]string
		want   events.Result
		starts []string          // in order
		skips  map[string]string // id -> pattern its reason must match
	}{
		{
			name:   "all succeed",
			want:   events.Success,
			starts: []string{"a", "b", "c", "d"},
		},
		{
			name:   "b fails",
			status: map[string]string{"b": "failure"},
			want:   events.Failure,
			starts: []string{"a", "b", "c"},
			skips:  map[string]string{"d": `\bb\b.*\bfailure\b|\bfailure\b.*\bb\b`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake("tok", nil, tt.status)
			got, err := drive(t, f, "tok", mustPlan(t, diamond))
			log := f.log()
			t.Logf("calls: %v", log)
			if err != nil {
				t.Fatalf("Drive: %v", err)
			}
			if got != tt.want {
				t.Errorf("result = %q, want %q", got, tt.want)
			}
			if s := ids(ofKind(log, "start")); !slices.Equal(s, tt.starts) {
				t.Errorf("started %v, want %v", s, tt.starts)
			}

			// a starts first, alone: the first await asks for a only,
			// and nothing else started before it.
			awaits := ofKind(log, "await")
			if len(awaits) == 0 || !slices.Equal(awaits[0].ids, []string{"a"}) {
				t.Fatalf("first await = %v, want one for [a] alone", awaits)
			}
			if first := slices.IndexFunc(log, func(c call) bool { return c.kind == "await" }); first < 0 || !slices.Equal(ids(ofKind(log[:first], "start")), []string{"a"}) {
				t.Errorf("before the first await: %v, want only a started", log[:max(first, 0)])
			}

			// b and c start together: both before the first await that
			// asks for either, and with no await between them.
			sb, sc := index(log, "start", "b"), index(log, "start", "c")
			if sb < 0 || sc < 0 {
				t.Fatalf("b or c never started")
			}
			for i, c := range log {
				if c.kind == "await" && (slices.Contains(c.ids, "b") || slices.Contains(c.ids, "c")) {
					if sb > i || sc > i {
						t.Errorf("await %v at %d ended before b (%d) and c (%d) both started", c.ids, i, sb, sc)
					}
					if !slices.Contains(c.ids, "b") || !slices.Contains(c.ids, "c") {
						t.Errorf("first await for b or c asks for %v, want both running", c.ids)
					}
					break
				}
			}
			for _, c := range log[min(sb, sc):max(sb, sc)] {
				if c.kind == "await" {
					t.Errorf("await %v between the starts of b and c", c.ids)
				}
			}
			// c runs to its end in every case.
			if index(log, "await", "c") < 0 {
				t.Errorf("c's end was never awaited")
			}

			// d, when it runs, starts last and after b and c ended.
			if sd := index(log, "start", "d"); sd >= 0 {
				if ab, ac := index(log, "await", "b"), index(log, "await", "c"); ab < 0 || ac < 0 || sd < ab || sd < ac {
					t.Errorf("d started at %d, before b (%d) and c (%d) ended", sd, ab, ac)
				}
				if s := ofKind(log, "start"); s[len(s)-1].id != "d" {
					t.Errorf("d is not the last job started")
				}
			}

			skips := ofKind(log, "skip")
			if len(skips) != len(tt.skips) {
				t.Errorf("skipped %v, want %d skips", skips, len(tt.skips))
			}
			for _, s := range skips {
				pat, ok := tt.skips[s.id]
				if !ok {
					t.Errorf("unexpected skip of %s (%s)", s.id, s.reason)
					continue
				}
				if !regexp.MustCompile(pat).MatchString(s.reason) {
					t.Errorf("skip reason of %s = %q, want it to name b and failure", s.id, s.reason)
				}
			}
			if n := f.refusals(); n != 0 {
				t.Errorf("%d calls refused for their token", n)
			}
		})
	}
}

func TestDriveParamsUnderJobEnv(t *testing.T) {
	plan := mustPlan(t, `
- id: own
  image: alpine
  script: [env]
  env:
    OWN: mine
- id: bare
  image: alpine
  script: [env]
`)
	f := newFake("tok", map[string]string{"GREETING": "hi", "OWN": "param"}, nil)
	got, err := drive(t, f, "tok", plan)
	if err != nil {
		t.Fatalf("Drive: %v", err)
	}
	if got != events.Success {
		t.Errorf("result = %q, want success", got)
	}
	want := map[string]map[string]string{
		"own":  {"GREETING": "hi", "OWN": "mine"}, // the job's own env wins
		"bare": {"GREETING": "hi", "OWN": "param"},
	}
	starts := ofKind(f.log(), "start")
	if len(starts) != len(want) {
		t.Fatalf("started %v, want %d jobs", starts, len(want))
	}
	for _, s := range starts {
		if !maps.Equal(s.env, want[s.id]) {
			t.Errorf("job %s env = %v, want %v", s.id, s.env, want[s.id])
		}
	}
	// The plan's jobs keep their own env: the params go on a copy.
	if j, _ := plan.Job("own"); !maps.Equal(j.Env, map[string]string{"OWN": "mine"}) {
		t.Errorf("plan's job env changed to %v", j.Env)
	}
	if j, _ := plan.Job("bare"); len(j.Env) != 0 {
		t.Errorf("plan's bare job got env %v", j.Env)
	}
}

// A blocked job waits for a manual unblock that Drive cannot give: it and
// its dependents are reported skipped, and the independent jobs run. The
// graph cancels what is left (Graph.Cancel), and Graph.Result counts
// canceled jobs, "jobs that never finished (left blocked, say)", as
// canceled: the build's result is canceled, with no error, though every job
// that ran succeeded.
func TestDriveBlocked(t *testing.T) {
	for _, code := range []codes.Code{codes.FailedPrecondition, codes.Unimplemented} {
		t.Run(code.String(), func(t *testing.T) { testDriveBlocked(t, code) })
	}
}

// testDriveBlocked runs TestDriveBlocked with the agent answering an await
// of an unblock with code: a local run (FailedPrecondition), or an agent
// from before unblocks (Unimplemented).
func testDriveBlocked(t *testing.T, code codes.Code) {
	plan := mustPlan(t, `
- id: build
  image: alpine
  script: [make]
- id: gate
  image: alpine
  script: [approve]
  blocked: true
- id: deploy
  image: alpine
  script: [deploy]
  dependencies: [gate]
- id: package
  image: alpine
  script: [tar]
  dependencies: [build]
`)
	f := newFake("tok", nil, nil)
	f.noUnblock = code
	got, err := drive(t, f, "tok", plan)
	log := f.log()
	t.Logf("calls: %v", log)
	if err != nil {
		t.Fatalf("Drive: %v", err)
	}
	if got != events.Canceled {
		t.Errorf("result = %q, want %q (blocked jobs never finished)", got, events.Canceled)
	}
	if s := ids(ofKind(log, "start")); !slices.Equal(s, []string{"build", "package"}) {
		t.Errorf("started %v, want [build package]", s)
	}
	if a := ids(ofKind(log, "await")); !slices.Equal(a, []string{"build", "package"}) {
		t.Errorf("awaited %v, want [build package]", a)
	}
	skips := ofKind(log, "skip")
	if s := ids(skips); !slices.Equal(s, []string{"gate", "deploy"}) {
		t.Fatalf("skipped %v, want [gate deploy]", skips)
	}
	if r := skips[0].reason; !strings.Contains(r, "manual unblock") {
		t.Errorf("gate's skip reason = %q, want it to say it waits for a manual unblock", r)
	}
	if r := skips[1].reason; !strings.Contains(r, "waits for a blocked job") {
		t.Errorf("deploy's skip reason = %q, want it to say it waits for a blocked job", r)
	}
	// The skips come once nothing runs any more.
	if first := slices.IndexFunc(log, func(c call) bool { return c.kind == "skip" }); first < index(log, "await", "package") {
		t.Errorf("skips reported before the running jobs ended: %v", log)
	}
}

func TestDriveWrongToken(t *testing.T) {
	f := newFake("right", map[string]string{"P": "1"}, nil)
	plan := mustPlan(t, diamond)
	api := connect(t, f, "wrong")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	var got events.Result
	var err error
	go func() {
		defer close(done)
		got, err = Drive(ctx, api, plan)
	}()
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		t.Fatal("Drive hangs on a refused token")
	}
	if ctx.Err() != nil {
		t.Fatalf("Drive only returned at its deadline: %v", err)
	}
	if err == nil {
		t.Fatalf("Drive = %q, nil; want an error", got)
	}
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Errorf("Drive error = %v (code %v), want it to carry Unauthenticated", err, status.Code(err))
	}
	if got != events.Error {
		t.Errorf("result = %q, want %q alongside the error", got, events.Error)
	}
	if log := f.log(); len(log) != 0 {
		t.Errorf("calls went through with a wrong token: %v", log)
	}
	if f.refusals() == 0 {
		t.Errorf("the fake refused no call")
	}
}

// A blocked job waits for a person's unblock, which may come while other
// jobs run; then it runs, and its dependents after it. A job unblocked
// before its dependency ended waits for that dependency.
func TestDriveBlockedJobsRunOnceUnblocked(t *testing.T) {
	plan := mustPlan(t, `
- id: a
  image: alpine
  script: [make]
- id: gate
  image: alpine
  script: [approve]
  blocked: true
  dependencies: [a]
- id: other
  image: alpine
  script: [approve]
  blocked: true
- id: b
  image: alpine
  script: [deploy]
  dependencies: [gate, other]
`)
	f := newFake("tok", nil, nil)
	f.canUnblock = true
	f.hold("a")
	api := connect(t, f, "tok")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	var got events.Result
	go func() {
		var err error
		got, err = Drive(ctx, api, plan)
		done <- err
	}()
	waiting := func(awaits, unblocks int) func(*fakeAPI) bool {
		return func(f *fakeAPI) bool { return f.waiting["await"] == awaits && f.waiting["unblock"] == unblocks }
	}
	// a runs; the driver awaits it and an unblock side by side.
	f.until(t, "await a and an unblock", waiting(1, 1))
	f.give("gate")
	f.until(t, "await a and the other unblock", func(f *fakeAPI) bool {
		return waiting(1, 1)(f) && len(f.calls) == 2
	})
	f.give("other") // other runs (and ends) while a still runs
	f.until(t, "await a alone, other done", func(f *fakeAPI) bool {
		return waiting(1, 0)(f) && index(f.calls, "await", "other") >= 0
	})
	f.release("a")
	if err := <-done; err != nil {
		t.Fatalf("Drive: %v", err)
	}
	log := f.log()
	t.Logf("calls: %v", log)
	if got != events.Success {
		t.Errorf("result = %q, want success", got)
	}
	want := []string{
		"start a", "unblock [gate other] -> gate", "unblock [other] -> other",
		"start other", "await [a other] -> other", "await [a] -> a",
		"start gate", "await [gate] -> gate",
		"start b", "await [b] -> b",
	}
	if g := fmt.Sprint(log); g != fmt.Sprint(want) {
		t.Errorf("calls\n %v\nwant\n %v", g, want)
	}
}

// The agent answers an await of an unblock with Canceled when the build
// is ending, while the driver's own context lives: that answer came
// first, the driver did not call it off, so it is an error, not a reason
// to ask again (which would spin while the build ends).
func TestDriveBuildEndingWhileAwaitingJobsAndAnUnblock(t *testing.T) {
	plan := mustPlan(t, "- {id: a, image: alpine, script: [make]}\n- {id: gate, image: alpine, script: [approve], blocked: true}\n")
	f := newFake("tok", nil, nil)
	f.noUnblock = codes.Canceled
	f.hold("a")
	api := connect(t, f, "tok")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Drive(ctx, api, plan)
		done <- err
	}()
	select {
	case err := <-done:
		if status.Code(err) != codes.Canceled || !strings.Contains(err.Error(), "unblock") {
			t.Errorf("Drive = %v, want the unblock's canceled answer", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Drive did not return on the build's end")
	}
}

// A script canceled while it waits for an unblock stops waiting.
func TestDriveCanceledWhileAwaitingAnUnblock(t *testing.T) {
	plan := mustPlan(t, "- {id: gate, image: alpine, script: [approve], blocked: true}\n")
	f := newFake("tok", nil, nil)
	f.canUnblock = true
	api := connect(t, f, "tok")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Drive(ctx, api, plan)
		done <- err
	}()
	f.until(t, "await the unblock", func(f *fakeAPI) bool { return f.waiting["unblock"] == 1 })
	cancel()
	select {
	case err := <-done:
		if status.Code(err) != codes.Canceled {
			t.Errorf("Drive = %v, want it canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Drive still waits after its context was canceled")
	}
}

// A service's dependents start as soon as it is started, and the service
// is stopped once they have all ended, before the build goes on waiting.
func TestDriveServices(t *testing.T) {
	f := newFake("tok", nil, nil)
	f.hold("db")
	got, err := drive(t, f, "tok", mustPlan(t, `
- {id: db, image: postgres, expose: [5432]}
- {id: a, image: alpine, script: [x], dependencies: [db]}
- {id: b, image: alpine, script: [x], dependencies: [db]}
- {id: c, image: alpine, script: [x], dependencies: [a, b]}
`))
	if err != nil || got != events.Success {
		t.Fatalf("Drive: %v %v", got, err)
	}
	var order []string
	for _, c := range f.log() {
		if c.kind == "start" || c.kind == "stop" {
			order = append(order, c.String())
		}
	}
	if want := []string{"start db", "start a", "start b", "start c", "stop db"}; !slices.Equal(order, want) {
		t.Errorf("calls %v, want %v", order, want)
	}
}

// The build's one architecture is required before any job starts; jobs
// asking for two are refused before anything runs.
func TestDriveRequiresTheArch(t *testing.T) {
	for _, tt := range []struct {
		name, yaml, wantErr string
		wantCalls           []string
	}{
		{"none asked", "- {id: a, image: i}", "", []string{"start a"}},
		{"amd", "- {id: a, image: i, arch: amd}\n- {id: b, image: i}", "", []string{"require [amd]", "start a", "start b"}},
		{"arm on amd", "- {id: a, image: i, arch: arm}", "needs an arm agent: this agent runs amd jobs, not arm", []string{"require [arm]"}},
		{"both", "- {id: a, image: i, arch: arm}\n- {id: b, image: i, arch: amd}", "ask for arm and amd: one agent runs all of a build's jobs", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake("tok", nil, nil)
			_, err := drive(t, f, "tok", mustPlan(t, tt.yaml))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Drive: %v, want %q", err, tt.wantErr)
			}
			var calls []string
			for _, c := range f.log() {
				if c.kind != "await" {
					calls = append(calls, c.String())
				}
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("calls %v, want %v", calls, tt.wantCalls)
			}
		})
	}
}
