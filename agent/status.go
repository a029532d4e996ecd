package agent

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// Job states besides the results (events.Result) of ended jobs.
const (
	stateQueued  = "queued"
	stateRunning = "running"
)

// JobStatus answers at once, without pausing anything: it is the script at
// work, not waiting.
func (s *jobServer) JobStatus(ctx context.Context, req *jobapi.JobStatusRequest) (*jobapi.JobStatusResponse, error) {
	states, err := s.b.jobStates(req.GetIds())
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	return &jobapi.JobStatusResponse{Jobs: states}, nil
}

// jobStates says where each of ids is (every job, in start order, when
// ids is empty).
func (b *build) jobStates(ids []string) ([]*jobapi.JobState, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(ids) == 0 {
		ids = b.order
	}
	now := time.Now()
	out := make([]*jobapi.JobState, 0, len(ids))
	for _, id := range ids {
		jr, ok := b.jobs[id]
		if !ok {
			return nil, fmt.Errorf("no job %q was started in this build", id)
		}
		st := &jobapi.JobState{Id: id, State: stateQueued, Deps: jr.job.Dependencies, Action: jr.action, Expose: jobapi.PortsToProto(jr.job.Expose)}
		select {
		case <-jr.done:
			st.State, st.Exit, st.Message = string(jr.result.status), int32(jr.result.exit), jr.result.message
			st.Duration = durationpb.New(jr.duration)
		default:
			if !jr.started.IsZero() { // it holds its capacity
				st.State, st.Duration = stateRunning, durationpb.New(now.Sub(jr.started))
			}
		}
		out = append(out, st)
	}
	return out, nil
}
