package storetest

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
)

func createAndGetBuild(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	full := coordinator.Build{
		ID: "full", Repo: "github.com/x/y",
		Source:  coordinator.Source{URL: "https://example.invalid/x/y.git", Branch: "main", Commit: "abc123", Tag: "v1.0"},
		Params:  map[string]string{"A": "1", "quote": `"'\n`},
		Labels:  map[string]string{"os": "linux"},
		State:   coordinator.Ended,
		Result:  events.Failure,
		Message: "it broke", Attempt: 2, Agent: "agent-1",
		LeaseExpires: t0.Add(time.Minute), Waiting: "",
		Created: t0, Started: t0.Add(time.Second), Ended: t0.Add(2 * time.Second),
		PullRequest: 42, Cache: coordinator.CacheScope{Scope: "branch:x", Fallback: "branch:main"},
	}
	must(t, s.CreateBuild(ctx, full))
	if got := get(t, s, "full"); !reflect.DeepEqual(got, full) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, full)
	}

	before := time.Now()
	must(t, s.CreateBuild(ctx, coordinator.Build{ID: "bare", Params: map[string]string{}}))
	bare := get(t, s, "bare")
	if bare.State != coordinator.Queued || bare.Created.Before(before.Add(-time.Second)) || bare.Params != nil || bare.Labels != nil {
		t.Errorf("defaults: %+v", bare)
	}

	for _, c := range []struct {
		name string
		b    coordinator.Build
		want string
	}{
		{"duplicate id", full, "exists already"},
		{"no id", coordinator.Build{}, "no id"},
		{"bad state", coordinator.Build{ID: "x", State: "sleeping"}, "unknown state"},
		{"negative attempt", coordinator.Build{ID: "y", Attempt: -1}, "negative attempt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := s.CreateBuild(ctx, c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("CreateBuild: %v, want an error saying %q", err, c.want)
			}
		})
	}

	_, err := s.GetBuild(ctx, "nope")
	if !errors.Is(err, coordinator.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("GetBuild of a missing build: %v", err)
	}
}

func listBuilds(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	for i, b := range []coordinator.Build{
		{ID: "a", Repo: "r1", Created: t0.Add(1 * time.Second), Source: coordinator.Source{Branch: "feature"}},
		{ID: "b", Repo: "r2", Created: t0.Add(2 * time.Second), Priority: coordinator.PriorityHigh},
		{ID: "c", Repo: "r1", Created: t0.Add(3 * time.Second), State: coordinator.Ended, Source: coordinator.Source{Branch: "feature"}},
		{ID: "d", Repo: "r1", Created: t0.Add(4 * time.Second), State: coordinator.Running, Attempt: 1, Source: coordinator.Source{Branch: "feature"}, PullRequest: 7},
		{ID: "e", Repo: "r2", Created: t0.Add(4 * time.Second)}, // same time as d: by id
	} {
		_ = i
		must(t, s.CreateBuild(ctx, b))
	}
	if b, _ := s.GetBuild(ctx, "b"); b.Priority != coordinator.PriorityHigh {
		t.Errorf("a build stored high is read %s", b.Priority)
	}
	for _, c := range []struct {
		name string
		f    coordinator.BuildFilter
		want []string
	}{
		{"all", coordinator.BuildFilter{}, []string{"e", "d", "c", "b", "a"}},
		{"limit", coordinator.BuildFilter{Limit: 2}, []string{"e", "d"}},
		{"repo", coordinator.BuildFilter{Repo: "r1"}, []string{"d", "c", "a"}},
		{"state", coordinator.BuildFilter{State: coordinator.Queued}, []string{"e", "b", "a"}},
		{"repo and state", coordinator.BuildFilter{Repo: "r2", State: coordinator.Queued, Limit: 1}, []string{"e"}},
		{"nothing", coordinator.BuildFilter{Repo: "r3"}, []string{}},
		{"active", coordinator.BuildFilter{Active: true, State: coordinator.Ended}, []string{"e", "d", "b", "a"}},
		{"branch", coordinator.BuildFilter{Repo: "r1", Branch: "feature"}, []string{"d", "c", "a"}},
		{"active on a branch", coordinator.BuildFilter{Repo: "r1", Branch: "feature", Active: true}, []string{"d", "a"}},
		{"pull request", coordinator.BuildFilter{PullRequest: 7}, []string{"d"}},
		{"negative limit is none", coordinator.BuildFilter{Limit: -1}, []string{"e", "d", "c", "b", "a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bs, err := s.ListBuilds(ctx, c.f)
			must(t, err)
			if got := ids(bs); !reflect.DeepEqual(got, c.want) {
				t.Errorf("ListBuilds(%+v) = %v, want %v", c.f, got, c.want)
			}
		})
	}
}

func queuedAndRunning(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	// Created out of order; z and y at the same moment (by id then).
	for _, b := range []coordinator.Build{build("late", 9), build("z", 5), build("y", 5), build("early", 1), build("run1", 3), build("run2", 2)} {
		must(t, s.CreateBuild(ctx, b))
	}
	lease := time.Now().Add(time.Minute)
	must(t, s.Assign(ctx, "run1", 1, "ag", lease))
	must(t, s.Assign(ctx, "run2", 1, "ag", lease))
	q, err := s.Queued(ctx)
	must(t, err)
	if got, want := ids(q), []string{"early", "y", "z", "late"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Queued = %v, want %v", got, want)
	}
	r, err := s.Running(ctx)
	must(t, err)
	if got, want := ids(r), []string{"run2", "run1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Running = %v, want %v", got, want)
	}
	// A requeued build keeps its place: it was created first.
	must(t, s.Requeue(ctx, "run2", 1, coordinator.ReasonAgentLost))
	q, err = s.Queued(ctx)
	must(t, err)
	if got, want := ids(q), []string{"early", "run2", "y", "z", "late"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Queued after a requeue = %v, want %v", got, want)
	}
}

func setWaiting(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	must(t, s.CreateBuild(ctx, build("b", 0)))
	must(t, s.SetWaiting(ctx, "b", "no agent is connected"))
	must(t, s.SetWaiting(ctx, "b", "no agent is connected")) // unchanged: fine
	if got := get(t, s, "b").Waiting; got != "no agent is connected" {
		t.Errorf("Waiting = %q", got)
	}
	must(t, s.Assign(ctx, "b", 1, "ag", time.Now().Add(time.Minute)))
	if got := get(t, s, "b").Waiting; got != "" {
		t.Errorf("Assign kept Waiting %q", got)
	}
	if err := s.SetWaiting(ctx, "b", "busy"); !errors.Is(err, coordinator.ErrStale) {
		t.Errorf("SetWaiting of a running build: %v", err)
	}
	if err := s.SetWaiting(ctx, "nope", "busy"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("SetWaiting of a missing build: %v", err)
	}
}

// lifecycleAndFencing drives one build through every change, in order,
// with the refusals a stale or misplaced change meets on the way.
func lifecycleAndFencing(t *testing.T, open Opener) {
	now := t0.Add(time.Hour)
	s := open(t, func() time.Time { return now })
	must(t, s.CreateBuild(context.Background(), build("b", 0)))
	for _, st := range fencingSteps(s, now) {
		t.Run(st.name, func(t *testing.T) {
			err := st.do()
			switch {
			case st.err == nil && st.says == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case st.err != nil && !errors.Is(err, st.err):
				t.Fatalf("error %v, want %v", err, st.err)
			case st.says != "" && (err == nil || !strings.Contains(err.Error(), st.says)):
				t.Fatalf("error %v, want one saying %q", err, st.says)
			}
			if err != nil && !strings.Contains(err.Error(), `build b`) {
				t.Errorf("the error %q does not name the build", err)
			}
			if st.then != nil {
				st.then(t, get(t, s, "b"))
			}
		})
	}
}

// fencingStep is one change of lifecycleAndFencing, what it must meet, and
// what the build must be after it.
type fencingStep struct {
	name string
	do   func() error
	err  error  // nil, ErrStale or ErrNotFound
	says string // in the error
	then func(t *testing.T, b coordinator.Build)
}

// is checks a build's state, attempt and agent.
func is(state coordinator.State, attempt int, agent string) func(*testing.T, coordinator.Build) {
	return func(t *testing.T, b coordinator.Build) {
		if b.State != state || b.Attempt != attempt || b.Agent != agent {
			t.Errorf("build is %s attempt %d on %q, want %s attempt %d on %q", b.State, b.Attempt, b.Agent, state, attempt, agent)
		}
	}
}

// fencingSteps are the changes of build b, in order, with the store's
// clock at now.
func fencingSteps(s coordinator.Store, now time.Time) []fencingStep {
	ctx := context.Background()
	lease1, lease2 := t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	return []fencingStep{
		{"assign skipping an attempt", func() error { return s.Assign(ctx, "b", 2, "a1", lease1) }, coordinator.ErrStale, "queued at attempt 1", is(coordinator.Queued, 0, "")},
		{"renew before assign", func() error { return s.Renew(ctx, "b", 0, lease1) }, coordinator.ErrStale, "is queued at attempt 0", nil},
		{"finish a queued build as attempt 1", func() error { return s.Finish(ctx, "b", 1, events.Success, "") }, coordinator.ErrStale, "running at attempt 1", nil},
		{"retry a queued build", func() error { return s.Retry(ctx, "b", coordinator.ReasonRetried) }, coordinator.ErrStale, "needs it ended", nil},
		{"assign attempt 1", func() error { return s.Assign(ctx, "b", 1, "a1", lease1) }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Running, 1, "a1")(t, b)
			if !b.LeaseExpires.Equal(lease1) || !b.Started.Equal(now) {
				t.Errorf("lease %v started %v", b.LeaseExpires, b.Started)
			}
		}},
		{"assign attempt 1 again", func() error { return s.Assign(ctx, "b", 1, "a2", lease1) }, coordinator.ErrStale, "is running at attempt 1, the change needs it queued at attempt 0", is(coordinator.Running, 1, "a1")},
		{"assign attempt 2 while running", func() error { return s.Assign(ctx, "b", 2, "a2", lease1) }, coordinator.ErrStale, "running", is(coordinator.Running, 1, "a1")},
		{"renew a stale attempt", func() error { return s.Renew(ctx, "b", 0, lease2) }, coordinator.ErrStale, "running at attempt 0", nil},
		{"renew attempt 1", func() error { return s.Renew(ctx, "b", 1, lease2) }, nil, "", func(t *testing.T, b coordinator.Build) {
			if !b.LeaseExpires.Equal(lease2) {
				t.Errorf("lease %v, want %v", b.LeaseExpires, lease2)
			}
		}},
		{"finish a queued build while running", func() error { return s.Finish(ctx, "b", 0, events.Canceled, "") }, coordinator.ErrStale, "needs it queued", nil},
		{"requeue a wrong attempt", func() error { return s.Requeue(ctx, "b", 2, coordinator.ReasonAgentLost) }, coordinator.ErrStale, "attempt 2", nil},
		{"requeue attempt 1", func() error { return s.Requeue(ctx, "b", 1, coordinator.ReasonAgentLost) }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Queued, 1, "")(t, b)
			if !b.LeaseExpires.IsZero() || !b.Started.IsZero() {
				t.Errorf("requeue kept lease %v started %v", b.LeaseExpires, b.Started)
			}
		}},
		{"requeue attempt 1 again", func() error { return s.Requeue(ctx, "b", 1, coordinator.ReasonAgentLost) }, coordinator.ErrStale, "is queued at attempt 1", nil},
		{"renew the requeued attempt", func() error { return s.Renew(ctx, "b", 1, lease2) }, coordinator.ErrStale, "queued", nil},
		{"finish the requeued attempt", func() error { return s.Finish(ctx, "b", 1, events.Success, "late") }, coordinator.ErrStale, "queued", nil},
		{"assign attempt 1 after the requeue", func() error { return s.Assign(ctx, "b", 1, "a2", lease1) }, coordinator.ErrStale, "queued at attempt 0", nil},
		{"assign attempt 2", func() error { return s.Assign(ctx, "b", 2, "a2", lease1) }, nil, "", is(coordinator.Running, 2, "a2")},
		{"renew old attempt 1", func() error { return s.Renew(ctx, "b", 1, lease2) }, coordinator.ErrStale, "running at attempt 2, the change needs it running at attempt 1", nil},
		{"finish old attempt 1", func() error { return s.Finish(ctx, "b", 1, events.Failure, "late") }, coordinator.ErrStale, "", is(coordinator.Running, 2, "a2")},
		{"finish attempt 2", func() error { return s.Finish(ctx, "b", 2, events.Success, "ok") }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Ended, 2, "a2")(t, b)
			if b.Result != events.Success || b.Message != "ok" || !b.Ended.Equal(now) || !b.LeaseExpires.IsZero() {
				t.Errorf("ended build: %+v", b)
			}
		}},
		{"finish attempt 2 again", func() error { return s.Finish(ctx, "b", 2, events.Failure, "again") }, coordinator.ErrStale, "is ended at attempt 2", func(t *testing.T, b coordinator.Build) {
			if b.Result != events.Success {
				t.Errorf("the second finish changed the result to %s", b.Result)
			}
		}},
		{"renew an ended build", func() error { return s.Renew(ctx, "b", 2, lease2) }, coordinator.ErrStale, "ended", nil},
		{"requeue an ended build", func() error { return s.Requeue(ctx, "b", 2, coordinator.ReasonAgentLost) }, coordinator.ErrStale, "ended", nil},
		{"retry", func() error { return s.Retry(ctx, "b", coordinator.ReasonRetried) }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Queued, 2, "")(t, b)
			if b.Result != "" || b.Message != "" || !b.Ended.IsZero() || !b.Started.IsZero() || !b.Created.Equal(t0) {
				t.Errorf("retried build: %+v", b)
			}
			// Why attempts 2 and 3 exist; the first needs no reason.
			if want := map[int]string{2: coordinator.ReasonAgentLost, 3: coordinator.ReasonRetried}; !maps.Equal(b.AttemptReasons, want) {
				t.Errorf("attempt reasons %v, want %v", b.AttemptReasons, want)
			}
		}},
		{"retry a queued build", func() error { return s.Retry(ctx, "b", coordinator.ReasonRetried) }, coordinator.ErrStale, "queued", nil},
		{"assign attempt 3", func() error { return s.Assign(ctx, "b", 3, "a1", lease1) }, nil, "", is(coordinator.Running, 3, "a1")},
		{"requeue attempt 3", func() error { return s.Requeue(ctx, "b", 3, coordinator.ReasonLeaseExpired) }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Queued, 3, "")(t, b)
			if got := b.AttemptReasons[4]; got != coordinator.ReasonLeaseExpired || len(b.AttemptReasons) != 3 {
				t.Errorf("attempt reasons %v, want attempt 4's %q beside the others", b.AttemptReasons, coordinator.ReasonLeaseExpired)
			}
		}},
		{"cancel the queued build (attempt 0 ends it whatever its attempt)", func() error { return s.Finish(ctx, "b", 0, events.Canceled, "canceled") }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Ended, 3, "")(t, b)
			if b.Result != events.Canceled || b.Message != "canceled" {
				t.Errorf("canceled build: %+v", b)
			}
		}},
		{"cancel it again", func() error { return s.Finish(ctx, "b", 0, events.Canceled, "") }, coordinator.ErrStale, "is ended at attempt 3, the change needs it queued", nil},
		{"assign attempt 0", func() error { return s.Assign(ctx, "b", 0, "a1", lease1) }, nil, "attempts count from 1", nil},
	}
}

func changesOfMissingBuilds(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	lease := time.Now()
	for name, do := range map[string]func() error{
		"Assign":     func() error { return s.Assign(ctx, "nope", 1, "a", lease) },
		"Renew":      func() error { return s.Renew(ctx, "nope", 1, lease) },
		"Requeue":    func() error { return s.Requeue(ctx, "nope", 1, coordinator.ReasonAgentLost) },
		"Finish":     func() error { return s.Finish(ctx, "nope", 1, events.Error, "") },
		"Finish 0":   func() error { return s.Finish(ctx, "nope", 0, events.Canceled, "") },
		"Retry":      func() error { return s.Retry(ctx, "nope", coordinator.ReasonRetried) },
		"SetWaiting": func() error { return s.SetWaiting(ctx, "nope", "x") },
		"AppendEvent": func() error {
			_, err := s.AppendEvent(ctx, coordinator.StoredEvent{BuildID: "nope", Attempt: 1, Seq: 1})
			return err
		},
		"LastSeq": func() error { _, err := s.LastSeq(ctx, "nope", 1); return err },
		"Events":  func() error { _, err := s.Events(ctx, "nope"); return err },
	} {
		if err := do(); !errors.Is(err, coordinator.ErrNotFound) || errors.Is(err, coordinator.ErrStale) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("%s of a missing build: %v, want ErrNotFound naming it", name, err)
		}
	}
}

func canceledContext(t *testing.T, open Opener) {
	s := open(t, nil)
	must(t, s.CreateBuild(context.Background(), build("b", 0)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Assign(ctx, "b", 1, "a", time.Now()); err == nil {
		t.Error("Assign with a canceled context worked")
	}
	if err := s.CreateBuild(ctx, build("c", 0)); err == nil {
		t.Error("CreateBuild with a canceled context worked")
	}
	if b := get(t, s, "b"); b.State != coordinator.Queued {
		t.Errorf("the canceled Assign changed the build: %+v", b)
	}
	// The store still works after a canceled call.
	must(t, s.Assign(context.Background(), "b", 1, "a", time.Now()))
}

func buildIDs(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	for i, id := range []string{"ab2", "ab1", "b", "abc", "a"} {
		must(t, s.CreateBuild(ctx, build(id, i)))
	}
	for _, c := range []struct {
		prefix string
		limit  int
		want   []string
	}{
		{"ab", 10, []string{"ab1", "ab2", "abc"}},
		{"ab", 2, []string{"ab1", "ab2"}},
		{"", 10, []string{"a", "ab1", "ab2", "abc", "b"}},
		{"abcd", 10, nil},
		{"%", 10, nil},
		{"_b", 10, nil},
	} {
		got, err := s.BuildIDs(ctx, c.prefix, c.limit)
		must(t, err)
		if len(got) != len(c.want) || len(got) > 0 && !reflect.DeepEqual(got, c.want) {
			t.Errorf("BuildIDs(%q, %d) = %v, want %v", c.prefix, c.limit, got, c.want)
		}
	}
}

// handback queues a running attempt again with the labels it needs.
func handback(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	b := build("b", 0)
	b.Labels = map[string]string{"os": "linux"}
	must(t, s.CreateBuild(ctx, b))
	must(t, s.Assign(ctx, "b", 1, "ag", time.Now().Add(time.Minute)))
	want := map[string]string{"os": "linux", "arch": "arm"}
	if err := s.Handback(ctx, "b", 2, "needs arch=arm", want); !errors.Is(err, coordinator.ErrStale) {
		t.Errorf("Handback of another attempt: %v", err)
	}
	must(t, s.Handback(ctx, "b", 1, "needs arch=arm", want))
	got := get(t, s, "b")
	if got.State != coordinator.Queued || got.Attempt != 1 || got.Agent != "" || !maps.Equal(got.Labels, want) || got.AttemptReasons[2] != "needs arch=arm" {
		t.Errorf("handed back: %+v", got)
	}
	if err := s.Handback(ctx, "b", 1, "again", want); !errors.Is(err, coordinator.ErrStale) {
		t.Errorf("Handback of a queued build: %v", err)
	}
	if err := s.Handback(ctx, "nope", 1, "x", want); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("Handback of a missing build: %v", err)
	}
}
