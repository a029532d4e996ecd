package script

import (
	"context"
	"fmt"
	"maps"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// Drive runs a declarative build: it starts every job whose dependencies
// have succeeded, awaits whichever ends first, tells the agent which jobs it
// skips, and returns the build's result. When nothing runs and blocked jobs
// are left, it waits for a person to unblock one. The build's parameters
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
	params := resp.GetParams()
	facts := pipeline.FactsFromParams(params)
	// The changed files can be long and are one per line: a job's
	// environment is no place for them (a variable above 128 KB fails exec).
	if _, ok := params[pipeline.ParamChanged]; ok {
		params = maps.Clone(params)
		delete(params, pipeline.ParamChanged)
	}
	d := &driver{api: api, plan: plan, graph: pipeline.NewGraph(plan.Jobs), params: params}
	if err := d.skipUnwanted(ctx, facts); err != nil {
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

type driver struct {
	api     jobapi.JobAPIClient
	plan    *pipeline.Plan
	graph   *pipeline.Graph
	params  map[string]string
	running []string
}

// skipUnwanted skips the jobs whose `when` does not hold, and their
// dependents, in declaration order.
func (d *driver) skipUnwanted(ctx context.Context, facts pipeline.Facts) error {
	for _, job := range d.plan.Jobs {
		if st := d.graph.State(job.ID); st != pipeline.StatePending && st != pipeline.StateBlocked {
			continue // skipped already, as a dependent of an unwanted job
		}
		ok, reason := job.When.Holds(facts)
		if ok {
			continue
		}
		dependents, err := d.graph.Skip(job.ID)
		if err != nil {
			return err
		}
		if err := d.skip(ctx, job.ID, reason); err != nil {
			return err
		}
		for _, s := range dependents {
			if err := d.skip(ctx, s, fmt.Sprintf("dependency %s was skipped (%s)", job.ID, reason)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *driver) startReady(ctx context.Context) error {
	for _, id := range d.graph.Ready() {
		job, _ := d.plan.Job(id)
		if len(d.params) > 0 {
			env := maps.Clone(d.params)
			maps.Copy(env, job.Env)
			job.Env = env
		}
		if _, err := d.api.StartJob(ctx, &jobapi.StartJobRequest{Job: jobapi.JobToProto(job)}); err != nil {
			return fmt.Errorf("starting job %s: %w", id, err)
		}
		if err := d.graph.Start(id); err != nil {
			return err
		}
		d.running = append(d.running, id)
	}
	return nil
}

// awaitAny waits for the first of the running jobs to end. No deadline:
// the agent freezes this process while it waits.
func (d *driver) awaitAny(ctx context.Context) error {
	resp, err := d.api.AwaitJobs(ctx, &jobapi.AwaitJobsRequest{Ids: d.running, Any: true})
	if err != nil {
		return fmt.Errorf("awaiting jobs: %w", err)
	}
	if len(resp.GetResults()) == 0 { // would make this loop spin
		return fmt.Errorf("awaiting jobs %v: the agent answered with no result", d.running)
	}
	for _, r := range resp.GetResults() {
		d.running = remove(d.running, r.GetId())
		skipped, err := d.graph.Finish(r.GetId(), events.Result(r.GetStatus()))
		if err != nil {
			return err
		}
		for _, s := range skipped {
			if err := d.skip(ctx, s, fmt.Sprintf("dependency %s ended with %s", r.GetId(), r.GetStatus())); err != nil {
				return err
			}
		}
	}
	return nil
}

// next waits for what lets the build go on: the end of a running job, or
// else a person's unblock of a blocked job. It reports false when nothing
// can come.
func (d *driver) next(ctx context.Context) (bool, error) {
	if len(d.running) > 0 {
		return true, d.awaitAny(ctx)
	}
	if blocked := d.blocked(); len(blocked) > 0 {
		return d.awaitUnblock(ctx, blocked)
	}
	return false, nil
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

// awaitUnblock waits for a person to unblock one of ids. It reports false
// when this run has nobody to give one (a local run, or an agent older than
// unblocks). No deadline: the agent freezes this process while it waits.
func (d *driver) awaitUnblock(ctx context.Context, ids []string) (bool, error) {
	resp, err := d.api.AwaitUnblock(ctx, &jobapi.AwaitUnblockRequest{Ids: ids})
	switch status.Code(err) {
	case codes.OK:
	case codes.FailedPrecondition, codes.Unimplemented:
		return false, nil
	default:
		return false, fmt.Errorf("awaiting an unblock of %v: %w", ids, err)
	}
	if err := d.graph.Unblock(resp.GetId()); err != nil {
		return false, fmt.Errorf("awaiting an unblock of %v: the agent answered %q: %w", ids, resp.GetId(), err)
	}
	return true, nil
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
