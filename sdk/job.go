package monkeyci

import (
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// Job is a container job: its script lines run one by one, each in its own
// shell, in a container of Image with the build's workspace at /workspace.
// Zero values take the defaults of a job in a build file (1 CPU, 2 GB, a
// 20 minute timeout).
type Job struct {
	ID    string
	Image string
	// Script is shell lines; the job stops at the first that fails.
	Script []string
	// Deps are jobs of this build, started (or skipped) before this one,
	// that must succeed first; when one does not, this job is skipped.
	Deps             []string
	Env              map[string]string
	SaveArtifacts    []Artifact
	RestoreArtifacts []Artifact
	Caches           []Artifact
	CPUs             float64 // 0.25 is a quarter of one
	Memory           int64   // bytes
	// Pids bounds the processes of the job's container (0: the agent's
	// default, which is also the most it allows).
	Pids       int64
	WorkDir    string
	Timeout    time.Duration
	Shell      string
	Entrypoint []string
	Cmd        []string
	Labels     map[string]string
	// Expose makes the job a service: it serves these ports to the build's
	// other jobs, which reach it by its id as a host name (Addr). Jobs that
	// depend on it start once the ports accept connections; it runs until
	// Stop, or the end of the script. Start it with StartJob and wait for
	// it with Addr: Run would wait for its end.
	Expose []int
	// Arch is the machine architecture its image needs: "amd" or "arm"
	// (empty: the agent's own).
	Arch string
}

// Artifact is a path saved by one job and restored into another by id, or
// a cache kept across builds of the repository. Path is relative to the
// job's work dir and stays inside it; a restore writes only under it.
type Artifact struct {
	ID, Path string
	// Build, for a restored artifact, is the earlier build of the
	// repository that saved it (its whole id); "": this build.
	Build string
}

// State is where a job is.
type State string

// States: the first two are a job under way, the others how it ended.
const (
	Queued   State = "queued"
	Running  State = "running"
	Success  State = "success"
	Failure  State = "failure"
	Error    State = "error"
	Canceled State = "canceled"
	Skipped  State = "skipped"
)

// Result is how a job ended.
type Result struct {
	ID    string
	State State
	// Exit is its container's (or action's) exit code; -1 when it has none.
	Exit    int
	Message string
}

// OK says whether the job succeeded.
func (r Result) OK() bool { return r.State == Success }

// Err is nil when the job succeeded, else an error saying how it ended.
func (r Result) Err() error {
	if r.OK() {
		return nil
	}
	if r.Message == "" {
		return fmt.Errorf("job %s: %s", r.ID, r.State)
	}
	return fmt.Errorf("job %s: %s: %s", r.ID, r.State, r.Message)
}

// Status is where a job is now.
type Status struct {
	ID    string
	State State
	// Exit and Message are set once it has ended.
	Exit    int
	Message string
	Deps    []string
	// Duration is how long it has run, or ran.
	Duration time.Duration
	// Action: the script runs it itself.
	Action bool
	// Expose are the ports it serves, if it is a service.
	Expose []int
}

// StartJob queues a job and returns at once.
func (c *Client) StartJob(ctx context.Context, j Job) error {
	if _, err := c.api.StartJob(ctx, &jobapi.StartJobRequest{Job: j.proto()}); err != nil {
		return fmt.Errorf("starting job %s: %w", j.ID, apiError(err))
	}
	return nil
}

// Run starts a job and waits for its end.
func (c *Client) Run(ctx context.Context, j Job) (Result, error) {
	if err := c.StartJob(ctx, j); err != nil {
		return Result{}, err
	}
	res, err := c.Wait(ctx, j.ID)
	if err != nil {
		return Result{}, err
	}
	return res[0], nil
}

// Wait waits until every one of ids has ended and returns their results in
// the order of ids. The script is frozen meanwhile: ctx should have no
// deadline.
func (c *Client) Wait(ctx context.Context, ids ...string) ([]Result, error) {
	res, err := c.await(ctx, ids, false)
	if err != nil {
		return nil, err
	}
	byID := map[string]Result{}
	for _, r := range res {
		byID[r.ID] = r
	}
	out := make([]Result, 0, len(ids))
	for _, id := range ids {
		r, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("waiting for %v: the agent did not answer for %s", ids, id)
		}
		out = append(out, r)
	}
	return out, nil
}

// WaitAny waits until at least one of ids has ended and returns the
// results of those that have.
func (c *Client) WaitAny(ctx context.Context, ids ...string) ([]Result, error) {
	return c.await(ctx, ids, true)
}

func (c *Client) await(ctx context.Context, ids []string, any bool) ([]Result, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	resp, err := c.api.AwaitJobs(ctx, &jobapi.AwaitJobsRequest{Ids: ids, Any: any})
	if err != nil {
		return nil, fmt.Errorf("waiting for %v: %w", ids, apiError(err))
	}
	var out []Result
	for _, r := range resp.GetResults() {
		out = append(out, resultFromProto(r))
	}
	return out, nil
}

// Status says where each of ids is now (every job of the build when none is
// given), without waiting.
func (c *Client) Status(ctx context.Context, ids ...string) ([]Status, error) {
	resp, err := c.api.JobStatus(ctx, &jobapi.JobStatusRequest{Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("job status: %w", apiError(err))
	}
	out := make([]Status, 0, len(resp.GetJobs()))
	for _, j := range resp.GetJobs() {
		out = append(out, Status{
			ID: j.GetId(), State: State(j.GetState()), Exit: int(j.GetExit()), Message: j.GetMessage(),
			Deps: j.GetDeps(), Duration: j.GetDuration().AsDuration(), Action: j.GetAction(), Expose: jobapi.PortsFromProto(j.GetExpose()),
		})
	}
	return out, nil
}

// Stop stops a service (a job with Expose): it ends as a success unless it
// failed before.
func (c *Client) Stop(ctx context.Context, id string) error {
	if _, err := c.api.StopJob(ctx, &jobapi.StopJobRequest{Id: id}); err != nil {
		return fmt.Errorf("stopping job %s: %w", id, apiError(err))
	}
	return nil
}

// Addr waits until a service accepts connections on port and returns the
// address the build's jobs reach it at ("db:5432"). The script is frozen
// meanwhile: ctx should have no deadline.
func (c *Client) Addr(ctx context.Context, id string, port int) (string, error) {
	resp, err := c.api.JobAddress(ctx, &jobapi.JobAddressRequest{Id: id, Port: int32(port)})
	if err != nil {
		return "", fmt.Errorf("the address of job %s: %w", id, apiError(err))
	}
	return resp.GetAddress(), nil
}

// Skip records that the script will not run a job, and why.
func (c *Client) Skip(ctx context.Context, id, reason string) error {
	if _, err := c.api.SkipJob(ctx, &jobapi.SkipJobRequest{Id: id, Reason: reason}); err != nil {
		return fmt.Errorf("skipping job %s: %w", id, apiError(err))
	}
	return nil
}

func (j Job) proto() *jobapi.JobSpec {
	s := &jobapi.JobSpec{
		Id: j.ID, Image: j.Image, Script: j.Script, Dependencies: j.Deps,
		SaveArtifacts: artifacts(j.SaveArtifacts), RestoreArtifacts: artifacts(j.RestoreArtifacts), Caches: artifacts(j.Caches),
		MilliCpus: int64(math.Round(j.CPUs * 1000)), Memory: j.Memory, Pids: j.Pids, Env: j.Env, WorkDir: j.WorkDir, Shell: j.Shell,
		Entrypoint: j.Entrypoint, Cmd: j.Cmd, Labels: j.Labels, Arch: j.Arch, Expose: jobapi.PortsToProto(j.Expose),
	}
	if j.Timeout > 0 {
		s.Timeout = durationpb.New(j.Timeout)
	}
	return s
}

func artifacts(as []Artifact) []*jobapi.Artifact {
	var out []*jobapi.Artifact
	for _, a := range as {
		out = append(out, &jobapi.Artifact{Id: a.ID, Path: a.Path, Build: a.Build})
	}
	return out
}

func resultFromProto(r *jobapi.JobResult) Result {
	return Result{ID: r.GetId(), State: State(r.GetStatus()), Exit: int(r.GetExit()), Message: r.GetMessage()}
}
