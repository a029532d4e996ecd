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

func TestChangesTellsOfATriggeredBuild(t *testing.T) {
	f := newFleet(t, time.Minute)
	changes := f.c.Changes()
	select {
	case <-changes:
		t.Fatal("a change was told before any happened")
	default:
	}
	if _, err := f.c.Trigger(context.Background(), coordinator.Build{Source: coordinator.Source{URL: "/x"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("a trigger was not told")
	}
	if next := f.c.Changes(); next == changes {
		t.Error("Changes gave the closed channel again")
	}
}

// The coordinator knows, from the events it stores, which scripts are
// paused: the dashboard's capacity bars show their CPU lent to jobs.
func TestAgentUsageCountsPausedScripts(t *testing.T) {
	f := newFleet(t, time.Minute)
	ctx := context.Background()
	a := fleettest.Dial(t, f.addr)
	hello := fleettest.Hello("raw", "join-secret", &fleet.Capacity{MilliCpus: 4000, Memory: 16 << 30})
	hello.Pauses = true
	id := a.Join(t, hello)
	b, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: "/x"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign() != nil }); err != nil {
		t.Fatal(err)
	}
	ba := &fleet.BuildAttempt{BuildId: b.ID, Attempt: 1}
	// event sends one event and waits until the coordinator has taken it.
	event := func(seq int64, typ events.Type) {
		t.Helper()
		a.Send(t, fleettest.Event(t, ba, seq, events.Event{Type: typ}))
		if _, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAck() != nil }); err != nil {
			t.Fatal(err)
		}
	}
	usage := func(wantRunning, wantPaused int) {
		t.Helper()
		u, ok := f.c.AgentUsage()[id]
		if !ok {
			t.Fatal("no usage for the connected agent")
		}
		if u.Builds != wantRunning+wantPaused || u.ScriptsRunning != wantRunning || u.ScriptsPaused != wantPaused {
			t.Errorf("usage %+v: want %d running and %d paused scripts", u, wantRunning, wantPaused)
		}
		if u.Capacity.MilliCPUs != 4000 || u.Script.MilliCPUs != 1000 {
			t.Errorf("usage %+v: want a capacity of 4 CPUs and scripts of 1", u)
		}
	}
	// A stored event is a change, but not one of the build's record (the
	// builds list waits on those alone).
	all, records := f.c.Changes(), f.c.BuildChanges()
	event(1, events.BuildStart)
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("a stored event was not told")
	}
	select {
	case <-records:
		t.Error("a stored event was told as a change of the build's record")
	default:
	}
	usage(1, 0)
	event(2, events.ScriptPaused)
	usage(0, 1)
	// Out of order: the resume (4) comes before the pause it ends (3);
	// the older pause must not undo it.
	event(4, events.ScriptResumed)
	usage(1, 0)
	event(3, events.ScriptPaused)
	usage(1, 0)
	event(5, events.ScriptPaused)
	usage(0, 1)
	a.Send(t, fleettest.Done(ba, events.Success, 5))
	if _, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAck().GetDone() }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-records:
	case <-time.After(10 * time.Second):
		t.Fatal("the build's end was not told as a change of its record")
	}
	usage(0, 0)
}
