package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// An action is work the script does in its own container (a command run by
// `monkeyci job action`, a function given to the SDK's Action) reported as
// a job of its own: job/queued, job/start and job/end events, its output
// under its id, its result in the build's. The agent runs nothing for it;
// it only keeps the script thawed while it runs, since the script works.

var errNotAction = errors.New("not a running action")

func (s *jobServer) BeginAction(ctx context.Context, req *jobapi.BeginActionRequest) (*jobapi.BeginActionResponse, error) {
	if id := req.GetId(); !pipeline.ValidID(id) {
		return nil, status.Errorf(codes.InvalidArgument, "invalid action id %q: use letters, digits, '.', '_' and '-'", id)
	}
	if err := s.b.beginAction(req.GetId(), req.GetDeps()); err != nil {
		return nil, startStatus(err)
	}
	return &jobapi.BeginActionResponse{}, nil
}

func (s *jobServer) ActionOutput(ctx context.Context, req *jobapi.ActionOutputRequest) (*jobapi.ActionOutputResponse, error) {
	if st := req.GetStream(); st != "out" && st != "err" {
		return nil, status.Errorf(codes.InvalidArgument, "action output stream %q: expected out or err", st)
	}
	if _, err := s.b.runningAction(req.GetId(), false); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	s.b.rep.Output(req.GetId(), req.GetStream(), req.GetData())
	return &jobapi.ActionOutputResponse{}, nil
}

func (s *jobServer) EndAction(ctx context.Context, req *jobapi.EndActionRequest) (*jobapi.EndActionResponse, error) {
	res, err := s.b.endAction(req.GetId(), int(req.GetExit()), req.GetMessage())
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &jobapi.EndActionResponse{Result: &jobapi.JobResult{Id: res.id, Status: string(res.status), Exit: int32(res.exit), Message: res.message}}, nil
}

// beginAction registers a running action. Its dependencies must have
// succeeded already: the script waits for them first (the SDK does).
func (b *build) beginAction(id string, deps []string) error {
	djs, err := b.lookupDeps(id, deps)
	if err != nil {
		return err
	}
	b.mu.Lock()
	for _, d := range djs {
		select {
		case <-d.done:
			if d.result.status != events.Success {
				b.mu.Unlock()
				return fmt.Errorf("action %s depends on %s, which ended with %s", id, d.job.ID, d.result.status)
			}
		default:
			b.mu.Unlock()
			return fmt.Errorf("action %s depends on %s, which has not ended: wait for it first", id, d.job.ID)
		}
	}
	b.mu.Unlock()
	b.pauser.actionBegin()
	if _, err := b.register(id, pipeline.Job{ID: id, Dependencies: deps}, false, true); err != nil {
		b.pauser.actionEnd()
		return err
	}
	b.emit(events.Event{Type: events.JobQueued, Job: id, Deps: deps, Action: true})
	b.emit(events.Event{Type: events.JobStart, Job: id})
	return nil
}

// runningAction returns the running action id; claim takes on to end it.
func (b *build) runningAction(id string, claim bool) (*jobRun, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	jr, ok := b.jobs[id]
	if !ok || !jr.action || jr.ending {
		return nil, fmt.Errorf("%w: %s", errNotAction, id)
	}
	jr.ending = jr.ending || claim
	return jr, nil
}

// endAction ends a running action: exit 0 is success, above 0 a failure,
// below an error.
func (b *build) endAction(id string, exit int, message string) (jobResult, error) {
	jr, err := b.runningAction(id, true)
	if err != nil {
		return jobResult{}, err
	}
	res := jobResult{status: events.Success, exit: exit, message: message}
	switch {
	case exit > 0:
		res.status = events.Failure
		if res.message == "" {
			res.message = fmt.Sprintf("exited with code %d", exit)
		}
	case exit < 0:
		res.status = events.Error
	}
	b.closeAction(jr, res)
	res.id = id
	return res, nil
}

// endActions ends the actions the script left running: it has ended.
func (b *build) endActions() {
	b.mu.Lock()
	var left []*jobRun
	for _, id := range b.order {
		if jr := b.jobs[id]; jr.action && !jr.ending {
			jr.ending = true
			left = append(left, jr)
		}
	}
	b.mu.Unlock()
	for _, jr := range left {
		b.closeAction(jr, jobResult{status: events.Error, exit: -1, message: "the script ended before the action did"})
	}
}

func (b *build) closeAction(jr *jobRun, res jobResult) {
	b.mu.Lock()
	started := jr.started
	b.mu.Unlock()
	b.finish(jr, res, time.Since(started))
	b.pauser.actionEnd()
}
