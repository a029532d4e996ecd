package coordinator_test

import (
	"context"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// recoveryAgent joins a hand-driven agent with room for one build.
func recoveryAgent(t *testing.T, f *fleetFixture, name string) (*fleettest.Agent, *fleet.Welcome) {
	t.Helper()
	a := fleettest.Dial(t, f.addr)
	h := fleettest.Hello(name, "join-secret", &fleet.Capacity{MilliCpus: 1000, Memory: 4 << 30})
	h.Pauses = true
	return a, a.Welcome(t, h)
}

// assignedTo waits for a's next assignment and returns its attempt.
func assignedTo(t *testing.T, a *fleettest.Agent, id string) *fleet.BuildAttempt {
	t.Helper()
	m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign() != nil })
	if err != nil {
		t.Fatal(err)
	}
	ba := m.GetAssign().GetBuild()
	if ba.GetBuildId() != id {
		t.Fatalf("assigned %s, want %s", ba.GetBuildId(), id)
	}
	return ba
}

func (f *fleetFixture) triggerPlain(t *testing.T) coordinator.Build {
	t.Helper()
	b, err := f.c.Trigger(context.Background(), coordinator.Build{Source: coordinator.Source{URL: "/repo"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fleetFixture) reasons(t *testing.T, id string) map[int]string {
	t.Helper()
	b, err := f.store.GetBuild(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b.AttemptReasons
}

// An agent whose stream ends and that does not come back within the grace
// loses its build to another agent, as attempt 2 "agent lost"; not
// before the grace. The lease (an hour) plays no part.
func TestALostAgentsBuildMovesOnAfterTheGrace(t *testing.T) {
	const grace = 2 * time.Second
	f := newFleet(t, time.Hour, func(c *coordinator.Config) { c.AgentGrace = grace })
	lost, _ := recoveryAgent(t, f, "lost")
	b := f.triggerPlain(t)
	assignedTo(t, lost, b.ID)
	idle, _ := recoveryAgent(t, f, "idle")

	gone := time.Now() // before the hang-up: the grace starts at its end
	lost.Hangup(t)
	ba := assignedTo(t, idle, b.ID)
	if waited := time.Since(gone); waited < grace {
		t.Errorf("the build moved on %s after its agent left, before the grace of %s", waited, grace)
	}
	if ba.GetAttempt() != 2 {
		t.Errorf("moved on as attempt %d, want 2", ba.GetAttempt())
	}
	if got := f.reasons(t, b.ID)[2]; got != coordinator.ReasonAgentLost {
		t.Errorf("attempt 2 exists because %q, want %q", got, coordinator.ReasonAgentLost)
	}
}

// An agent that comes back within the grace holding its build keeps it:
// the late grace does not take it away.
func TestAnAgentBackWithinTheGraceKeepsItsBuild(t *testing.T) {
	// Long enough for a dial and a hello on a busy machine.
	const grace = 5 * time.Second
	f := newFleet(t, time.Hour, func(c *coordinator.Config) { c.AgentGrace = grace })
	a, w := recoveryAgent(t, f, "blip")
	b := f.triggerPlain(t)
	ba := assignedTo(t, a, b.ID)
	a.Hangup(t)

	again := fleettest.Dial(t, f.addr)
	h := fleettest.Hello("blip", w.GetCredential(), &fleet.Capacity{MilliCpus: 1000, Memory: 4 << 30})
	h.Id, h.Pauses, h.Holding = w.GetId(), true, []*fleet.BuildAttempt{ba}
	again.Welcome(t, h)
	time.Sleep(grace + time.Second) // past the grace the first stream's end started
	got, err := f.store.GetBuild(context.Background(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != coordinator.Running || got.Attempt != 1 || got.Agent != w.GetId() {
		t.Errorf("the build of an agent back in time is %s attempt %d on %q, want running attempt 1 on %s", got.State, got.Attempt, got.Agent, w.GetId())
	}
}

// An agent back after a restart without the build it was sent hands it
// on at once, as attempt 2 "agent restarted": with a grace and a lease of
// an hour nothing else can.
func TestARestartedAgentsBuildIsQueuedAgainAtOnce(t *testing.T) {
	f := newFleet(t, time.Hour, func(c *coordinator.Config) { c.AgentGrace = time.Hour })
	a, w := recoveryAgent(t, f, "restarted")
	b := f.triggerPlain(t)
	assignedTo(t, a, b.ID)
	a.Hangup(t)

	again := fleettest.Dial(t, f.addr)
	h := fleettest.Hello("restarted", w.GetCredential(), &fleet.Capacity{MilliCpus: 1000, Memory: 4 << 30})
	h.Id, h.Pauses = w.GetId(), true // holding nothing
	again.Welcome(t, h)
	if ba := assignedTo(t, again, b.ID); ba.GetAttempt() != 2 {
		t.Errorf("sent again as attempt %d, want 2", ba.GetAttempt())
	}
	if got := f.reasons(t, b.ID)[2]; got != coordinator.ReasonAgentRestarted {
		t.Errorf("attempt 2 exists because %q, want %q", got, coordinator.ReasonAgentRestarted)
	}
}

// A connected agent that sends no heartbeat (a frozen machine) loses its
// build when the lease runs out: attempt 2 says "lease expired", and the
// first attempt's late report is refused.
func TestAnExpiredLeaseSaysSo(t *testing.T) {
	f := newFleet(t, time.Second, func(c *coordinator.Config) { c.AgentGrace = time.Hour })
	frozen, _ := recoveryAgent(t, f, "frozen")
	b := f.triggerPlain(t)
	ba := assignedTo(t, frozen, b.ID)
	wait.Within(t, fleettest.Wait, "the lease of a silent agent to run out", func() bool { return f.reasons(t, b.ID)[2] != "" })
	if got := f.reasons(t, b.ID)[2]; got != coordinator.ReasonLeaseExpired {
		t.Errorf("attempt 2 exists because %q, want %q", got, coordinator.ReasonLeaseExpired)
	}
	frozen.Send(t, fleettest.Done(ba, "success", 0))
	m, err := frozen.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetRefuse() != nil })
	if err != nil {
		t.Fatal(err)
	}
	if m.GetRefuse().GetBuild().GetAttempt() != 1 {
		t.Errorf("refused %v, want attempt 1", m.GetRefuse().GetBuild())
	}
}
