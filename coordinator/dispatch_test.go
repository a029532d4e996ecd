package coordinator_test

import (
	"context"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Queued builds say why they wait, and the oldest one an agent can take
// goes as soon as one can: also when the dispatcher has looked at the
// queue before and skips the builds it found no agent for (no agent
// changed since), and when one of those is canceled meanwhile.
func TestQueuedBuildsSayWhyTheyWaitAndGoWhenAnAgentCan(t *testing.T) {
	const busy = "waiting for capacity: every agent that could take it is busy"
	// A lease of an hour: the lease tick, which looks at every queued
	// build again, comes long after this test.
	f := newFleet(t, time.Hour)
	ctx := context.Background()
	trigger := func(labels map[string]string) coordinator.Build {
		t.Helper()
		b, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: "/repo"}, Labels: labels})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	join := func(name string, labels map[string]string) *fleettest.Agent {
		t.Helper()
		a := fleettest.Dial(t, f.addr)
		// Room for one build's script and first job, the script paused.
		h := fleettest.Hello(name, "join-secret", &fleet.Capacity{MilliCpus: 1000, Memory: 4 << 30})
		h.Pauses, h.Labels = true, labels
		a.Join(t, h)
		return a
	}
	assigned := func(a *fleettest.Agent, want coordinator.Build) {
		t.Helper()
		m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign() != nil })
		if err != nil {
			t.Fatal(err)
		}
		if got := m.GetAssign().GetBuild().GetBuildId(); got != want.ID {
			t.Fatalf("assigned %s, want %s", got, want.ID)
		}
	}

	linux := trigger(map[string]string{"os": "linux"})
	first := trigger(nil)
	waitWaiting(t, f, linux.ID, "no agent is connected")
	waitWaiting(t, f, first.ID, "no agent is connected")

	plain := join("plain", nil)
	assigned(plain, first)
	waitWaiting(t, f, linux.ID, "no connected agent has the labels os=linux: start one with --labels os=linux")

	// The only agent is full: new builds say so, one by one.
	second, third := trigger(nil), trigger(nil)
	waitWaiting(t, f, second.ID, busy)
	waitWaiting(t, f, third.ID, busy)
	if err := f.c.Cancel(ctx, second.ID); err != nil {
		t.Fatal(err)
	}
	fourth := trigger(nil)
	waitWaiting(t, f, fourth.ID, busy)

	// The first build's end frees the agent: the oldest build still
	// queued that it can take goes there.
	plain.Send(t, fleettest.Done(&fleet.BuildAttempt{BuildId: first.ID, Attempt: 1}, events.Success, 0))
	assigned(plain, third)
	assigned(join("linux", map[string]string{"os": "linux"}), linux)
	waitWaiting(t, f, fourth.ID, busy)
}

// waitWaiting waits until the stored build id says it waits for why.
func waitWaiting(t *testing.T, f *fleetFixture, id, why string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		changes := f.c.Changes()
		b, err := f.store.GetBuild(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if b.Waiting == why {
			return
		}
		select {
		case <-changes:
		case <-deadline:
			t.Fatalf("build %s waits %q, want %q", id, b.Waiting, why)
		}
	}
}
