// Package script is what runs inside a build's script container: the
// driver that walks a declarative build's job graph through the job API,
// and the runner of a build script in any language.
package script

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// Drive runs a declarative build: it starts every job whose dependencies
// have succeeded, awaits whichever ends first, tells the agent which jobs it
// skips, and returns the build's result. While blocked jobs are left, it
// also waits for a person to unblock one. The build's parameters
// reach each job as environment variables, under the job's own env.
//
// A job whose `when` does not hold is skipped before anything starts, with
// its dependents: the facts it is judged on (branch, tag, commit, changed
// files) come with the parameters and do not change during a build.
func Drive(ctx context.Context, api jobapi.JobAPIClient, plan *pipeline.Plan) (events.Result, error) {
	resp, err := api.GetParams(ctx, &jobapi.GetParamsRequest{})
	if err != nil {
		return events.Error, fmt.Errorf("reading the build's parameters: %w", err)
	}
	d := newDriver(api, plan, resp.GetParams())
	skips, err := d.skipUnwanted()
	if err != nil {
		return events.Error, err
	}
	for _, s := range skips {
		if err := d.skip(ctx, s.id, s.reason); err != nil {
			return events.Error, err
		}
	}
	if err := d.require(ctx); err != nil {
		return events.Error, err
	}
	for more := true; more; {
		if err := d.startReady(ctx); err != nil {
			return events.Error, err
		}
		if more, err = d.next(ctx); err != nil {
			return events.Error, err
		}
	}
	// What is left waits for a manual unblock, or for a job that does:
	// nobody here can give one.
	for _, id := range d.graph.Cancel() {
		reason := "waits for a blocked job"
		if job, _ := plan.Job(id); job.Blocked {
			reason = "blocked: waits for a manual unblock, which this run cannot give"
		}
		if err := d.skip(ctx, id, reason); err != nil {
			return events.Error, err
		}
	}
	return d.graph.Result(), nil
}

// Opening is what Drive starts first in a build of these parameters,
// before it hears of any job: the jobs ready once the unwanted ones are
// skipped, each as Drive asks the agent to start it. The agent starts
// them itself while the script container starts (agent/ahead.go), and
// the driver then finds them started. None when a job asks for an
// architecture: the driver first asks the agent for it (require).
func Opening(plan *pipeline.Plan, params map[string]string) ([]pipeline.Job, error) {
	d := newDriver(nil, plan, params)
	if _, err := d.skipUnwanted(); err != nil {
		return nil, err
	}
	if len(d.archs()) > 0 {
		return nil, nil
	}
	var jobs []pipeline.Job
	for _, id := range d.graph.Ready() {
		jobs = append(jobs, d.job(id))
	}
	return jobs, nil
}

// newDriver is a driver of plan in a build of these parameters, nothing
// started yet.
func newDriver(api jobapi.JobAPIClient, plan *pipeline.Plan, params map[string]string) *driver {
	facts := pipeline.FactsFromParams(params)
	// The changed files can be long and are one per line: a job's
	// environment is no place for them (a variable above 128 KB fails exec).
	if _, ok := params[pipeline.ParamChanged]; ok {
		params = maps.Clone(params)
		delete(params, pipeline.ParamChanged)
	}
	return &driver{api: api, plan: plan, graph: pipeline.NewGraph(plan.Jobs), params: params, facts: facts, stopped: map[string]bool{}}
}

type driver struct {
	api    jobapi.JobAPIClient
	plan   *pipeline.Plan
	graph  *pipeline.Graph
	params map[string]string
	// facts are what a job's `when` is judged on.
	facts   pipeline.Facts
	running []string
	// stopped are the services asked to stop.
	stopped map[string]bool
	// noUnblocks: this run has nobody to unblock a job.
	noUnblocks bool
}

// skipped is a job the driver skips, and why.
type skipped struct{ id, reason string }

// skipUnwanted skips, in the graph, the jobs whose `when` does not hold,
// and their dependents, and returns them in declaration order: the
// agent is told before anything starts.
func (d *driver) skipUnwanted() ([]skipped, error) {
	var skips []skipped
	for _, job := range d.plan.Jobs {
		if st := d.graph.State(job.ID); st != pipeline.StatePending && st != pipeline.StateBlocked {
			continue // skipped already, as a dependent of an unwanted job
		}
		ok, reason := job.When.Holds(d.facts)
		if ok {
			continue
		}
		dependents, err := d.graph.Skip(job.ID)
		if err != nil {
			return nil, err
		}
		skips = append(skips, skipped{job.ID, reason})
		for _, s := range dependents {
			skips = append(skips, skipped{s, fmt.Sprintf("dependency %s was skipped (%s)", job.ID, reason)})
		}
	}
	return skips, nil
}

// require tells the agent the architecture the build's jobs need, before
// any starts: an agent of another one hands the build back to be sent to
// one that has it. One agent runs all of a build's jobs, so they must agree.
func (d *driver) require(ctx context.Context) error {
	archs := d.archs()
	if len(archs) == 0 {
		return nil
	}
	if len(archs) > 1 {
		return fmt.Errorf("the build's jobs ask for %s: one agent runs all of a build's jobs, so give them one arch", strings.Join(archs, " and "))
	}
	if _, err := d.api.Require(ctx, &jobapi.RequireRequest{Arch: archs}); err != nil {
		return fmt.Errorf("the build needs an %s agent: %s", archs[0], status.Convert(err).Message())
	}
	return nil
}

// archs are the architectures the jobs not skipped ask for.
func (d *driver) archs() []string {
	var archs []string
	for _, j := range d.plan.Jobs {
		if st := d.graph.State(j.ID); j.Arch != "" && st != pipeline.StateSkipped && !slices.Contains(archs, j.Arch) {
			archs = append(archs, j.Arch)
		}
	}
	return archs
}

// startReady starts every job that can start, until none can: a service's
// dependents can as soon as it started. Then it stops the services no job
// needs any more.
func (d *driver) startReady(ctx context.Context) error {
	for ready := d.graph.Ready(); len(ready) > 0; ready = d.graph.Ready() {
		for _, id := range ready {
			if err := d.start(ctx, id); err != nil {
				return err
			}
		}
	}
	for _, id := range d.graph.Unneeded() {
		if d.stopped[id] {
			continue
		}
		if _, err := d.api.StopJob(ctx, &jobapi.StopJobRequest{Id: id}); err != nil {
			return fmt.Errorf("stopping service %s: %w", id, err)
		}
		d.stopped[id] = true
	}
	return nil
}

func (d *driver) start(ctx context.Context, id string) error {
	if _, err := d.api.StartJob(ctx, &jobapi.StartJobRequest{Job: jobapi.JobToProto(d.job(id))}); err != nil {
		return fmt.Errorf("starting job %s: %w", id, err)
	}
	if err := d.graph.Start(id); err != nil {
		return err
	}
	d.running = append(d.running, id)
	return nil
}

// job is the job id as it is started: the build's parameters in its
// environment, under its own.
func (d *driver) job(id string) pipeline.Job {
	job, _ := d.plan.Job(id)
	if len(d.params) > 0 {
		env := maps.Clone(d.params)
		maps.Copy(env, job.Env)
		job.Env = env
	}
	return job
}

// awaitAny waits for the first of the running jobs to end. No deadline:
// the agent freezes this process while it waits.
func (d *driver) awaitAny(ctx context.Context) error {
	resp, err := d.api.AwaitJobs(ctx, &jobapi.AwaitJobsRequest{Ids: d.running, Any: true})
	if err != nil {
		return fmt.Errorf("awaiting jobs: %w", err)
	}
	return d.finished(ctx, resp)
}

// finished takes in the jobs an await reported ended, and skips what can
// no longer run.
func (d *driver) finished(ctx context.Context, resp *jobapi.AwaitJobsResponse) error {
	if len(resp.GetResults()) == 0 { // would make the driver's loop spin
		return fmt.Errorf("awaiting jobs %v: the agent answered with no result", d.running)
	}
	for _, r := range resp.GetResults() {
		d.running = remove(d.running, r.GetId())
		skipped, err := d.graph.Finish(r.GetId(), events.Result(r.GetStatus()))
		if err != nil {
			return err
		}
		for _, s := range skipped {
			if err := d.skip(ctx, s, events.SkipReason(r.GetId(), events.Result(r.GetStatus()))); err != nil {
				return err
			}
		}
	}
	return nil
}

// next waits for what lets the build go on: the end of a running job, or a
// person's unblock of a blocked job, whichever comes first (a gate can be
// approved while other jobs run). It reports false when nothing can come.
func (d *driver) next(ctx context.Context) (bool, error) {
	var blocked []string
	if !d.noUnblocks {
		blocked = d.blocked()
	}
	switch {
	case len(d.running) == 0 && len(blocked) == 0:
		return false, nil
	case len(blocked) == 0:
		return true, d.awaitAny(ctx)
	case len(d.running) == 0:
		resp, err := d.api.AwaitUnblock(ctx, d.unblockRequest(blocked))
		if err := d.unblocked(resp, err, blocked); err != nil {
			return false, err
		}
		return !d.noUnblocks, nil
	}
	return true, d.awaitEither(ctx, blocked)
}

// awaitEither awaits the running jobs and an unblock side by side. The
// first answer calls the other await off; an answer that came all the
// same is taken too, the unblock first, so that a job unblocked beside
// its dependency's failure is skipped with it.
func (d *driver) awaitEither(ctx context.Context, blocked []string) error {
	actx, callOff := context.WithCancel(ctx)
	defer callOff()
	jobs := make(chan error, 1)
	var jobsResp *jobapi.AwaitJobsResponse
	go func() {
		var err error
		jobsResp, err = d.api.AwaitJobs(actx, &jobapi.AwaitJobsRequest{Ids: d.running, Any: true})
		jobs <- err
	}()
	unblock := make(chan error, 1)
	var unblockResp *jobapi.AwaitUnblockResponse
	go func() {
		var err error
		unblockResp, err = d.api.AwaitUnblock(actx, d.unblockRequest(blocked))
		unblock <- err
	}()
	var jobsErr, unblockErr error
	jobsOff, unblockOff := false, false // called off by this driver
	select {
	case jobsErr = <-jobs:
		callOff()
		unblockErr, unblockOff = <-unblock, true
	case unblockErr = <-unblock:
		if !unavailable(unblockErr) { // else: nobody can unblock; the jobs still run
			callOff()
			jobsOff = true
		}
		jobsErr = <-jobs
	}
	// Only the await called off may end canceled without it mattering: a
	// first answer that says canceled (the build ending) is an error.
	dropped := func(err error, off bool) bool { return off && status.Code(err) == codes.Canceled }
	if !dropped(unblockErr, unblockOff) {
		if err := d.unblocked(unblockResp, unblockErr, blocked); err != nil {
			return err
		}
	}
	switch {
	case dropped(jobsErr, jobsOff):
		return nil
	case jobsErr != nil:
		return fmt.Errorf("awaiting jobs: %w", jobsErr)
	}
	return d.finished(ctx, jobsResp)
}

// unblocked takes in the answer to an await of an unblock of ids. No
// unblock can come when the run has nobody to give one (a local run, or an
// agent older than unblocks): the driver stops asking.
func (d *driver) unblocked(resp *jobapi.AwaitUnblockResponse, err error, ids []string) error {
	if unavailable(err) {
		d.noUnblocks = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("awaiting an unblock of %v: %w", ids, err)
	}
	if err := d.graph.Unblock(resp.GetId()); err != nil {
		return fmt.Errorf("awaiting an unblock of %v: the agent answered %q: %w", ids, resp.GetId(), err)
	}
	return nil
}

// unblockRequest asks for an unblock of ids, with their dependencies: the
// agent tells them in job/blocked, so the job graph keeps a blocked job's
// edges before the job is queued.
func (d *driver) unblockRequest(ids []string) *jobapi.AwaitUnblockRequest {
	req := &jobapi.AwaitUnblockRequest{Ids: ids}
	for _, j := range d.plan.Jobs {
		if len(j.Dependencies) > 0 && slices.Contains(ids, j.ID) {
			if req.Deps == nil {
				req.Deps = map[string]*jobapi.Deps{}
			}
			req.Deps[j.ID] = &jobapi.Deps{Ids: j.Dependencies}
		}
	}
	return req
}

// blocked returns the jobs that wait for a manual unblock.
func (d *driver) blocked() []string {
	var out []string
	for _, j := range d.plan.Jobs {
		if d.graph.State(j.ID) == pipeline.StateBlocked {
			out = append(out, j.ID)
		}
	}
	return out
}

// unavailable says an await of an unblock was refused because nobody can
// give one.
func unavailable(err error) bool {
	c := status.Code(err)
	return c == codes.FailedPrecondition || c == codes.Unimplemented
}

func (d *driver) skip(ctx context.Context, id, reason string) error {
	if _, err := d.api.SkipJob(ctx, &jobapi.SkipJobRequest{Id: id, Reason: reason}); err != nil {
		return fmt.Errorf("skipping job %s: %w", id, err)
	}
	return nil
}

func remove(ids []string, id string) []string {
	out := ids[:0]
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}
