package agent

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// A blocked job waits for a person. The script asks for it with
// AwaitUnblock and is paused meanwhile, like an await on jobs: a script
// waiting for an approval costs its memory, nothing more. The person's
// unblock reaches the build through Runner.Unblock (from the coordinator,
// through the link) and is recorded for the build: an await that comes
// later returns it at once, and an unblock of a job the script never
// waits on changes nothing.

// ErrUnknownBuild: no build with that id runs on this runner.
var ErrUnknownBuild = errors.New("no such build runs here")

// Unblock lets a blocked job of a running build run. Repeating it changes
// nothing.
func (r *Runner) Unblock(buildID, job string) error {
	r.mu.Lock()
	b := r.builds[buildID]
	r.mu.Unlock()
	if b == nil {
		return fmt.Errorf("build %s: %w", buildID, ErrUnknownBuild)
	}
	if !b.spec.Unblockable {
		return fmt.Errorf("build %s runs without a coordinator: its jobs cannot be unblocked", buildID)
	}
	b.unblock(job)
	return nil
}

// track makes a running build reachable by Unblock; untrack forgets it.
func (r *Runner) track(b *build) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.builds[b.spec.ID]; ok {
		return fmt.Errorf("a build with id %s already runs here", b.spec.ID)
	}
	r.builds[b.spec.ID] = b
	return nil
}

func (r *Runner) untrack(b *build) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.builds, b.spec.ID)
}

// unblock records a person's unblock of job and wakes the script's await.
func (b *build) unblock(job string) {
	// One unblock at a time: job/unblocked is told once, and before the
	// script hears of it (and starts the job).
	b.unblockMu.Lock()
	defer b.unblockMu.Unlock()
	b.mu.Lock()
	told := b.unblocked[job]
	b.mu.Unlock()
	if told {
		return
	}
	b.emit(events.Event{Type: events.JobUnblocked, Job: job})
	b.mu.Lock()
	b.unblocked[job] = true
	b.changedLocked()
	b.mu.Unlock()
}

// awaitUnblock returns the first of ids a person unblocked, waiting for one
// with the script paused. It tells once per job that the job waits.
// deps are the jobs' dependencies, told with job/blocked.
func (b *build) awaitUnblock(ctx context.Context, ids []string, deps map[string][]string) (string, error) {
	check := func() (<-chan struct{}, string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, id := range ids {
			if b.unblocked[id] {
				return b.changed, id
			}
		}
		return b.changed, ""
	}
	changed, id := check()
	if id != "" {
		b.pauser.answer(ctx) // another await of the script's may have frozen it
		return id, nil
	}
	b.mu.Lock()
	var fresh []string
	for _, id := range ids {
		if !b.blocked[id] {
			b.blocked[id] = true
			fresh = append(fresh, id)
		}
	}
	b.mu.Unlock()
	for _, id := range fresh {
		b.emit(events.Event{Type: events.JobBlocked, Job: id, Deps: deps[id], Message: "waits for a manual unblock"})
	}
	b.pauser.awaitBegin()
	for id == "" {
		select {
		case <-changed:
		case <-ctx.Done():
			b.pauser.awaitOver(ctx)
			return "", ctx.Err()
		case <-b.jobsCtx.Done():
			b.pauser.awaitEnd(ctx)
			return "", errBuildEnding
		}
		changed, id = check()
	}
	b.pauser.awaitEnd(ctx) // before the answer: the script runs again
	return id, nil
}

// AwaitUnblock serves the job API's call. A build run without a
// coordinator (monkeyci run) has nobody to unblock a job: the script hears
// so at once, and skips it.
func (s *jobServer) AwaitUnblock(ctx context.Context, req *jobapi.AwaitUnblockRequest) (*jobapi.AwaitUnblockResponse, error) {
	if !s.b.spec.Unblockable {
		return nil, status.Error(codes.FailedPrecondition, "this build runs without a coordinator: nobody can unblock its jobs")
	}
	if len(req.GetIds()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "await of no job")
	}
	deps := map[string][]string{}
	for id, d := range req.GetDeps() {
		deps[id] = d.GetIds()
	}
	id, err := s.b.awaitUnblock(ctx, req.GetIds(), deps)
	switch {
	case errors.Is(err, errBuildEnding):
		return nil, status.Error(codes.Canceled, err.Error())
	case err != nil:
		return nil, status.FromContextError(err).Err()
	}
	return &jobapi.AwaitUnblockResponse{Id: id}, nil
}
