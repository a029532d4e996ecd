package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
)

// build is a stored build, its events, and what made it.
type build struct {
	b coordinator.Build
	// delivery is the forge:id of the delivery that made it, event the
	// forge event it was made for ("" for either when none).
	delivery, event string
	// events are the stored events by attempt and seq, as JSON; marks the
	// highest seq of each attempt with every one before it stored.
	events map[int]map[int64][]byte
	marks  map[int]int64
}

// copyOut is the build as a caller gets it.
func (sb *build) copyOut() coordinator.Build {
	b := sb.b
	b.Params, b.Labels, b.AttemptReasons = cloneMap(b.Params), cloneMap(b.Labels), cloneMap(b.AttemptReasons)
	return b
}

// CreateBuild stores a new build; its state defaults to queued and its
// creation time to now.
func (s *Store) CreateBuild(ctx context.Context, b coordinator.Build) error {
	sb, err := s.newBuild(b)
	if err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("create build %s: %w", b.ID, err)
	}
	defer s.mu.Unlock()
	return s.insertLocked(sb)
}

// CreateDeliveredBuild stores a build made by a forge's delivery, once.
func (s *Store) CreateDeliveredBuild(ctx context.Context, b coordinator.Build, d coordinator.Delivery) (string, error) {
	if d.Forge == "" || d.ID == "" {
		return "", errors.New("create delivered build: a forge and a delivery id are required")
	}
	sb, err := s.newBuild(b)
	if err != nil {
		return "", err
	}
	sb.delivery, sb.event = d.Forge+":"+d.ID, d.Event
	if err := s.lock(ctx); err != nil {
		return "", fmt.Errorf("create build %s: %w", b.ID, err)
	}
	defer s.mu.Unlock()
	var first *build
	for _, o := range s.builds {
		if o.delivery == sb.delivery {
			return o.b.ID, fmt.Errorf("delivery %s made build %s: %w", sb.delivery, o.b.ID, coordinator.ErrDuplicate)
		}
		if d.Event != "" && o.event == d.Event && o.b.Repo == b.Repo && !o.b.Created.Before(stamp(d.Since)) &&
			(first == nil || o.b.Created.Before(first.b.Created)) {
			first = o
		}
	}
	if first != nil {
		return first.b.ID, fmt.Errorf("build %s of %s was made for the same event (%s): %w", first.b.ID, b.Repo, d.Event, coordinator.ErrDuplicate)
	}
	if err := s.insertLocked(sb); err != nil {
		return "", err
	}
	return b.ID, nil
}

// newBuild checks b and fills its defaults.
func (s *Store) newBuild(b coordinator.Build) (*build, error) {
	b, err := b.Stored(s.now())
	if err != nil {
		return nil, err
	}
	b.Created, b.Started, b.Ended, b.LeaseExpires = stamp(b.Created), stamp(b.Started), stamp(b.Ended), stamp(b.LeaseExpires)
	sb := &build{b: b, events: map[int]map[int64][]byte{}, marks: map[int]int64{}}
	sb.b = sb.copyOut()
	return sb, nil
}

func (s *Store) insertLocked(sb *build) error {
	if _, ok := s.builds[sb.b.ID]; ok {
		return fmt.Errorf("create build %s: a build with that id or delivery exists already", sb.b.ID)
	}
	s.builds[sb.b.ID] = sb
	return nil
}

// GetBuild returns the build (coordinator.ErrNotFound).
func (s *Store) GetBuild(ctx context.Context, id string) (coordinator.Build, error) {
	if err := s.lock(ctx); err != nil {
		return coordinator.Build{}, fmt.Errorf("get build %s: %w", id, err)
	}
	defer s.mu.Unlock()
	sb, ok := s.builds[id]
	if !ok {
		return coordinator.Build{}, fmt.Errorf("build %s: %w", id, coordinator.ErrNotFound)
	}
	return sb.copyOut(), nil
}

// BuildIDs returns the ids that start with prefix, in order, at most limit.
func (s *Store) BuildIDs(ctx context.Context, prefix string, limit int) ([]string, error) {
	if err := s.lock(ctx); err != nil {
		return nil, fmt.Errorf("builds by id prefix %s: %w", prefix, err)
	}
	var ids []string
	for id := range s.builds {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	s.mu.Unlock()
	slices.Sort(ids)
	if limit >= 0 && len(ids) > limit {
		ids = ids[:limit]
	}
	return ids, nil
}

// ListBuilds returns the builds that match f, newest first (by creation,
// then id).
func (s *Store) ListBuilds(ctx context.Context, f coordinator.BuildFilter) ([]coordinator.Build, error) {
	bs, err := s.matching(ctx, "list builds", func(b *coordinator.Build) bool {
		state := f.State == "" || b.State == f.State
		if f.Active {
			state = b.State != coordinator.Ended
		}
		return state && (f.Repo == "" || b.Repo == f.Repo) && (f.Branch == "" || b.Source.Branch == f.Branch) &&
			(f.PullRequest == 0 || b.PullRequest == f.PullRequest)
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(bs)
	if f.Limit > 0 && len(bs) > f.Limit {
		bs = bs[:f.Limit]
	}
	return bs, nil
}

// Queued returns the queued builds, oldest first (by creation, then id).
func (s *Store) Queued(ctx context.Context) ([]coordinator.Build, error) {
	return s.matching(ctx, "queued builds", func(b *coordinator.Build) bool { return b.State == coordinator.Queued })
}

// Running returns the builds under a lease, oldest first.
func (s *Store) Running(ctx context.Context) ([]coordinator.Build, error) {
	return s.matching(ctx, "running builds", func(b *coordinator.Build) bool { return b.State == coordinator.Running })
}

// matching returns copies of the builds that match, oldest first (by
// creation, then id).
func (s *Store) matching(ctx context.Context, what string, match func(*coordinator.Build) bool) ([]coordinator.Build, error) {
	if err := s.lock(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	var out []coordinator.Build
	for _, sb := range s.builds {
		if match(&sb.b) {
			out = append(out, sb.copyOut())
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b coordinator.Build) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// SetWaiting records why a queued build was not dispatched.
func (s *Store) SetWaiting(ctx context.Context, id, why string) error {
	return s.change(ctx, fmt.Sprintf("set why build %s waits", id), id, want{state: coordinator.Queued, anyAttempt: true},
		func(b *coordinator.Build) { b.Waiting = why })
}

// Assign moves a queued build to running as attempt (its attempt+1).
func (s *Store) Assign(ctx context.Context, id string, attempt int, agent string, lease time.Time) error {
	op := fmt.Sprintf("assign build %s attempt %d", id, attempt)
	if attempt < 1 {
		return fmt.Errorf("%s: attempts count from 1", op)
	}
	now := stamp(s.now())
	return s.change(ctx, op, id, want{state: coordinator.Queued, attempt: attempt - 1}, func(b *coordinator.Build) {
		b.State, b.Attempt, b.Agent, b.LeaseExpires, b.Started, b.Waiting = coordinator.Running, attempt, agent, stamp(lease), now, ""
	})
}

// Renew extends the lease of a running attempt.
func (s *Store) Renew(ctx context.Context, id string, attempt int, lease time.Time) error {
	return s.change(ctx, fmt.Sprintf("renew the lease of build %s attempt %d", id, attempt), id,
		want{state: coordinator.Running, attempt: attempt}, func(b *coordinator.Build) { b.LeaseExpires = stamp(lease) })
}

// Requeue puts a running attempt back in the queue; reason is why the
// next attempt exists.
func (s *Store) Requeue(ctx context.Context, id string, attempt int, reason string) error {
	return s.change(ctx, fmt.Sprintf("requeue build %s attempt %d", id, attempt), id,
		want{state: coordinator.Running, attempt: attempt}, func(b *coordinator.Build) { requeue(b, reason) })
}

// Handback is Requeue for a build that needs another kind of agent.
func (s *Store) Handback(ctx context.Context, id string, attempt int, reason string, labels map[string]string) error {
	return s.change(ctx, fmt.Sprintf("hand back build %s attempt %d", id, attempt), id,
		want{state: coordinator.Running, attempt: attempt}, func(b *coordinator.Build) {
			requeue(b, reason)
			b.Labels = cloneMap(labels)
		})
}

func requeue(b *coordinator.Build, reason string) {
	b.State, b.Agent, b.LeaseExpires, b.Started, b.Waiting = coordinator.Queued, "", time.Time{}, time.Time{}, ""
	b.AttemptReasons = withReason(b.AttemptReasons, b.Attempt+1, reason)
}

func withReason(reasons map[int]string, attempt int, reason string) map[int]string {
	if reasons == nil {
		reasons = map[int]string{}
	}
	reasons[attempt] = reason
	return reasons
}

// Finish ends a running attempt with a result; attempt 0 ends a queued
// build whatever its attempt count.
func (s *Store) Finish(ctx context.Context, id string, attempt int, result events.Result, message string) error {
	w := want{state: coordinator.Running, attempt: attempt}
	if attempt == 0 {
		w = want{state: coordinator.Queued, anyAttempt: true}
	}
	now := stamp(s.now())
	return s.change(ctx, fmt.Sprintf("finish build %s attempt %d", id, attempt), id, w, func(b *coordinator.Build) {
		b.State, b.Result, b.Message, b.Ended, b.LeaseExpires, b.Waiting = coordinator.Ended, result, message, now, time.Time{}, ""
	})
}

// Retry queues an ended build again as a new attempt.
func (s *Store) Retry(ctx context.Context, id, reason string) error {
	return s.change(ctx, fmt.Sprintf("retry build %s", id), id, want{state: coordinator.Ended, anyAttempt: true}, func(b *coordinator.Build) {
		b.State, b.Result, b.Message, b.Agent, b.Waiting = coordinator.Queued, "", "", "", ""
		b.LeaseExpires, b.Started, b.Ended = time.Time{}, time.Time{}, time.Time{}
		b.AttemptReasons = withReason(b.AttemptReasons, b.Attempt+1, reason)
	})
}

// want is what a fenced change needs of a build.
type want struct {
	state      coordinator.State
	attempt    int
	anyAttempt bool
}

func (w want) String() string {
	if w.anyAttempt {
		return string(w.state)
	}
	return fmt.Sprintf("%s at attempt %d", w.state, w.attempt)
}

func (w want) matches(b *coordinator.Build) bool {
	return b.State == w.state && (w.anyAttempt || b.Attempt == w.attempt)
}

// change applies apply to the build when it is as w says, else refuses:
// ErrNotFound, or ErrStale saying what the build is.
func (s *Store) change(ctx context.Context, op, id string, w want, apply func(*coordinator.Build)) error {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer s.mu.Unlock()
	sb, ok := s.builds[id]
	switch {
	case !ok:
		return fmt.Errorf("%s: %w", op, coordinator.ErrNotFound)
	case !w.matches(&sb.b):
		return fmt.Errorf("%s: %w: the build is %s at attempt %d, the change needs it %s", op, coordinator.ErrStale, sb.b.State, sb.b.Attempt, w)
	}
	apply(&sb.b)
	return nil
}
