package script

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// Drive runs a declarative build: it starts every job whose dependencies
// have succeeded, awaits whichever ends first, tells the agent which jobs it
// skips, and returns the build's result.
func Drive(ctx context.Context, api jobapi.JobAPIClient, plan *pipeline.Plan, log hclog.Logger) (events.Result, error) {
	g := pipeline.NewGraph(plan.Jobs)
	var running []string
	for {
		for _, id := range g.Ready() {
			job, _ := plan.Job(id)
			if _, err := api.StartJob(ctx, &jobapi.StartJobRequest{Job: jobapi.JobToProto(job)}); err != nil {
				return events.Error, fmt.Errorf("starting job %s: %w", id, err)
			}
			if err := g.Start(id); err != nil {
				return events.Error, err
			}
			running = append(running, id)
		}
		if len(running) == 0 {
			break
		}
		// No deadline: the agent freezes this process while it waits.
		resp, err := api.AwaitJobs(ctx, &jobapi.AwaitJobsRequest{Ids: running, Any: true})
		if err != nil {
			return events.Error, fmt.Errorf("awaiting jobs: %w", err)
		}
		for _, r := range resp.GetResults() {
			running = remove(running, r.GetId())
			skipped, err := g.Finish(r.GetId(), events.Result(r.GetStatus()))
			if err != nil {
				return events.Error, err
			}
			if r.GetStatus() != string(events.Success) {
				log.Info("job did not succeed", "job", r.GetId(), "status", r.GetStatus(), "message", r.GetMessage())
			}
			for _, s := range skipped {
				reason := fmt.Sprintf("skipped: dependency %s ended with %s", r.GetId(), r.GetStatus())
				if _, err := api.SkipJob(ctx, &jobapi.SkipJobRequest{Id: s, Reason: reason}); err != nil {
					return events.Error, fmt.Errorf("skipping job %s: %w", s, err)
				}
			}
		}
	}
	// Jobs that wait for a manual unblock cannot run here yet.
	for _, j := range plan.Jobs {
		if g.State(j.ID) == pipeline.StateBlocked {
			if _, err := api.SkipJob(ctx, &jobapi.SkipJobRequest{Id: j.ID, Reason: "blocked: waits for a manual unblock, which this run cannot give"}); err != nil {
				return events.Error, fmt.Errorf("skipping job %s: %w", j.ID, err)
			}
		}
	}
	return g.Result(), nil
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
