package coordinator

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Unblock lets a blocked job of a running build run (a manual approval):
// the agent holding the build's lease is told, on its stream, and the
// build's script, which waits for it, goes on.
//
// The job must be waiting: the attempt's stored events say job/blocked
// for it, and no job/unblocked since. Those are the agent's own account,
// so an unknown job, one that is not blocked or one already unblocked is
// refused here at once, with no round trip to the agent; an unblock that
// passes is recorded by the agent and told back as job/unblocked.
func (c *Coordinator) Unblock(ctx context.Context, id, job string) error {
	if !c.Leading() {
		return c.onLeader(ctx, func(ctx context.Context, api fleet.AdminClient) error {
			_, err := api.UnblockJob(ctx, &fleet.UnblockJobRequest{Build: id, Job: job})
			return err
		})
	}
	b, err := c.cfg.Store.GetBuild(ctx, id)
	if err != nil {
		return err
	}
	if b.State != Running {
		return status.Errorf(codes.FailedPrecondition, "build %s is %s: only a running build's jobs can be unblocked", id, b.State)
	}
	l, ok := c.leases.current(id)
	var conn *agentConn
	if ok {
		conn = c.agents.connected(l.agent)
	}
	if !ok { // it ended since it was read
		return status.Errorf(codes.FailedPrecondition, "build %s is %s: only a running build's jobs can be unblocked", id, Ended)
	}
	if err := c.waitsForUnblock(ctx, id, l.attempt, job); err != nil {
		return err
	}
	if conn == nil || !conn.unblock(id, l.attempt, job) {
		return status.Errorf(codes.Unavailable, "the agent running build %s is not connected: try again once it is", id)
	}
	return nil
}

// waitsForUnblock checks, from the attempt's stored events, that job waits
// for an unblock.
func (c *Coordinator) waitsForUnblock(ctx context.Context, id string, attempt int, job string) error {
	evs, err := c.cfg.Store.Events(ctx, id)
	if err != nil {
		return fmt.Errorf("reading the events of build %s: %w", id, err)
	}
	var blocked, unblocked bool
	for _, e := range evs {
		if e.Attempt != attempt || e.Event.Job != job {
			continue
		}
		switch e.Event.Type {
		case events.JobBlocked:
			blocked = true
		case events.JobUnblocked:
			blocked, unblocked = false, true
		}
	}
	switch {
	case blocked:
		return nil
	case unblocked:
		return status.Errorf(codes.FailedPrecondition, "job %q of build %s is already unblocked", job, id)
	}
	return status.Errorf(codes.FailedPrecondition, "job %q of build %s does not wait for an unblock (its build has told no job/blocked for it)", job, id)
}

// unblock queues an Unblock for the agent; it reports whether it could.
func (a *agentConn) unblock(build string, attempt int, job string) bool {
	return a.send(&fleet.CoordinatorMessage{Msg: &fleet.CoordinatorMessage_Unblock{Unblock: &fleet.Unblock{
		Build: &fleet.BuildAttempt{BuildId: build, Attempt: int32(attempt)}, Job: job,
	}}})
}

// UnblockJob serves the admin call: an admin's, not a viewer's (readOnly).
func (s *AdminServer) UnblockJob(ctx context.Context, r *fleet.UnblockJobRequest) (*fleet.BuildInfo, error) {
	if r.GetBuild() == "" || r.GetJob() == "" {
		return nil, status.Error(codes.InvalidArgument, "say the build and the job to unblock")
	}
	id, err := s.resolveBuild(ctx, r.GetBuild())
	if err != nil {
		return nil, err
	}
	if err := s.c.Unblock(ctx, id, r.GetJob()); err != nil {
		return nil, storeError(err)
	}
	return s.info(ctx, id)
}
