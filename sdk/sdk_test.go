package monkeyci

import (
	"context"
	"errors"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// fakeAPI is a job API that keeps what it is told. Jobs end as results
// says (success when absent) as soon as they are awaited.
type fakeAPI struct {
	jobapi.UnimplementedJobAPIServer
	results map[string]*jobapi.JobResult

	mu      sync.Mutex
	tokens  []string
	started []*jobapi.JobSpec
	skipped map[string]string
	calls   []string
	output  map[string]string
}

func (f *fakeAPI) note(ctx context.Context, call string) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, strings.Join(md.Get("authorization"), ","))
	f.calls = append(f.calls, call)
}

func (f *fakeAPI) StartJob(ctx context.Context, req *jobapi.StartJobRequest) (*jobapi.StartJobResponse, error) {
	f.note(ctx, "start "+req.GetJob().GetId())
	if req.GetJob().GetId() == "dup" {
		return nil, status.Error(codes.AlreadyExists, "a job with that id was already started: dup")
	}
	f.mu.Lock()
	f.started = append(f.started, req.GetJob())
	f.mu.Unlock()
	return &jobapi.StartJobResponse{}, nil
}

func (f *fakeAPI) result(id string) *jobapi.JobResult {
	if r, ok := f.results[id]; ok {
		return r
	}
	return &jobapi.JobResult{Id: id, Status: "success"}
}

func (f *fakeAPI) AwaitJobs(ctx context.Context, req *jobapi.AwaitJobsRequest) (*jobapi.AwaitJobsResponse, error) {
	f.note(ctx, "await "+strings.Join(req.GetIds(), ","))
	if _, ok := ctx.Deadline(); ok {
		return nil, status.Error(codes.InvalidArgument, "an await must have no deadline")
	}
	resp := &jobapi.AwaitJobsResponse{}
	// Answered in reverse order: the SDK puts them back in the asked one.
	for i := len(req.GetIds()) - 1; i >= 0; i-- {
		resp.Results = append(resp.Results, f.result(req.GetIds()[i]))
	}
	return resp, nil
}

func (f *fakeAPI) JobStatus(ctx context.Context, req *jobapi.JobStatusRequest) (*jobapi.JobStatusResponse, error) {
	f.note(ctx, "status")
	return &jobapi.JobStatusResponse{Jobs: []*jobapi.JobState{{Id: "a", State: "running", Deps: []string{"x"}, Duration: nil}}}, nil
}

func (f *fakeAPI) SkipJob(ctx context.Context, req *jobapi.SkipJobRequest) (*jobapi.SkipJobResponse, error) {
	f.note(ctx, "skip "+req.GetId())
	f.mu.Lock()
	f.skipped[req.GetId()] = req.GetReason()
	f.mu.Unlock()
	return &jobapi.SkipJobResponse{}, nil
}

func (f *fakeAPI) GetParams(ctx context.Context, req *jobapi.GetParamsRequest) (*jobapi.GetParamsResponse, error) {
	f.note(ctx, "params")
	return &jobapi.GetParamsResponse{Params: map[string]string{"target": "prod"}}, nil
}

func (f *fakeAPI) BeginAction(ctx context.Context, req *jobapi.BeginActionRequest) (*jobapi.BeginActionResponse, error) {
	f.note(ctx, "begin "+req.GetId())
	return &jobapi.BeginActionResponse{}, nil
}

func (f *fakeAPI) ActionOutput(ctx context.Context, req *jobapi.ActionOutputRequest) (*jobapi.ActionOutputResponse, error) {
	f.mu.Lock()
	f.output[req.GetId()+"/"+req.GetStream()] += string(req.GetData())
	f.mu.Unlock()
	return &jobapi.ActionOutputResponse{}, nil
}

func (f *fakeAPI) EndAction(ctx context.Context, req *jobapi.EndActionRequest) (*jobapi.EndActionResponse, error) {
	f.note(ctx, "end "+req.GetId())
	st := "success"
	if req.GetExit() != 0 {
		st = "failure"
	}
	return &jobapi.EndActionResponse{Result: &jobapi.JobResult{Id: req.GetId(), Status: st, Exit: req.GetExit(), Message: req.GetMessage()}}, nil
}

// serve starts f on a unix socket and returns a client of it.
func serve(t *testing.T, f *fakeAPI) *Client {
	t.Helper()
	f.skipped, f.output = map[string]string{}, map[string]string{}
	sock := filepath.Join(t.TempDir(), "job.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	jobapi.RegisterJobAPIServer(srv, f)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	t.Setenv(EnvAPI, "unix://"+sock)
	t.Setenv(EnvToken, "secret")
	c, err := Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConnectOutsideABuild(t *testing.T) {
	t.Setenv(EnvAPI, "")
	t.Setenv(EnvToken, "")
	if _, err := Connect(context.Background()); !errors.Is(err, ErrNotInBuild) {
		t.Errorf("got %v, want ErrNotInBuild", err)
	}
}

func TestRunStartsThenWaitsWithTheToken(t *testing.T) {
	f := &fakeAPI{results: map[string]*jobapi.JobResult{"b": {Id: "b", Status: "failure", Exit: 1, Message: "script line 0 failed with exit code 1"}}}
	c := serve(t, f)
	ctx := context.Background()
	res, err := c.Run(ctx, Job{ID: "a", Image: "busybox", Script: []string{"true"}, Deps: []string{"x"}, Memory: 1 << 30, Timeout: time.Minute,
		SaveArtifacts: []Artifact{{ID: "bin", Path: "out"}}})
	if err != nil || !res.OK() || res.Err() != nil {
		t.Fatalf("%+v %v", res, err)
	}
	s := f.started[0]
	if s.GetImage() != "busybox" || s.GetDependencies()[0] != "x" || s.GetMemory() != 1<<30 || s.GetTimeout().AsDuration() != time.Minute || s.GetSaveArtifacts()[0].GetPath() != "out" {
		t.Errorf("started %v", s)
	}
	res2, err := c.Wait(ctx, "a", "b")
	if err != nil || res2[0].ID != "a" || res2[1].ID != "b" {
		t.Fatalf("%+v %v", res2, err)
	}
	if want := "job b: failure: script line 0 failed with exit code 1"; res2[1].Err() == nil || res2[1].Err().Error() != want {
		t.Errorf("b's error %v, want %q", res2[1].Err(), want)
	}
	for _, tok := range f.tokens {
		if tok != "Bearer secret" {
			t.Errorf("a call carried %q", tok)
		}
	}
}

// The agent's refusals come through in its own words, with their code.
func TestRefusalsAreTheAgentsWords(t *testing.T) {
	c := serve(t, &fakeAPI{})
	err := c.StartJob(context.Background(), Job{ID: "dup", Image: "x"})
	if err == nil || err.Error() != "starting job dup: a job with that id was already started: dup" {
		t.Errorf("got %v", err)
	}
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("code %v", status.Code(err))
	}
}

func TestStatusAndParams(t *testing.T) {
	c := serve(t, &fakeAPI{})
	ctx := context.Background()
	sts, err := c.Status(ctx)
	if err != nil || len(sts) != 1 || sts[0].State != Running || sts[0].Deps[0] != "x" {
		t.Errorf("%+v %v", sts, err)
	}
	v, ok, err := c.Param(ctx, "target")
	if v != "prod" || !ok || err != nil {
		t.Errorf("%q %v %v", v, ok, err)
	}
	if _, ok, _ := c.Param(ctx, "nothing"); ok {
		t.Error("an absent parameter was found")
	}
}

func TestActionReportsOutputAndExit(t *testing.T) {
	f := &fakeAPI{}
	c := serve(t, f)
	ctx := context.Background()
	res, err := c.Action(ctx, "lint", []string{"a"}, func(ctx context.Context, stdout, stderr io.Writer) error {
		cmd := exec.CommandContext(ctx, "sh", "-c", "echo out; echo err >&2; exit 3")
		cmd.Stdout, cmd.Stderr = stdout, stderr
		return cmd.Run()
	})
	if err != nil || res.State != Failure || res.Exit != 3 || res.Message != "exited with code 3" {
		t.Fatalf("%+v %v", res, err)
	}
	if f.output["lint/out"] != "out\n" || f.output["lint/err"] != "err\n" {
		t.Errorf("output %v", f.output)
	}
	if got := strings.Join(f.calls, "; "); !strings.Contains(got, "await a; begin lint; end lint") {
		t.Errorf("calls %s", got)
	}
	res, err = c.Action(ctx, "plain", nil, func(context.Context, io.Writer, io.Writer) error { return errors.New("no luck") })
	if err != nil || res.Exit != 1 || res.Message != "no luck" {
		t.Errorf("%+v %v", res, err)
	}
}

func TestActionIsSkippedWhenADependencyFailed(t *testing.T) {
	f := &fakeAPI{results: map[string]*jobapi.JobResult{"a": {Id: "a", Status: "error"}}}
	c := serve(t, f)
	ran := false
	res, err := c.Action(context.Background(), "after", []string{"a"}, func(context.Context, io.Writer, io.Writer) error { ran = true; return nil })
	if err != nil || ran || res.State != Skipped || f.skipped["after"] != "dependency a ended with error" {
		t.Errorf("%+v %v ran=%v skipped=%v", res, err, ran, f.skipped)
	}
}
