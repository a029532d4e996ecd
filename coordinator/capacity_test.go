package coordinator_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/link"
	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A heartbeat crosses the assignment that follows it on the wire: it still
// shows the room that assignment took. The coordinator must not hand that
// room out twice, or a non-pausing agent runs two scripts that hold the CPU
// each other's jobs wait for.
func TestAHeartbeatWrittenBeforeAnAssignmentDoesNotFreeItsRoom(t *testing.T) {
	f := newFleet(t, time.Minute)
	ctx := context.Background()
	a := fleettest.Dial(t, f.addr)
	// Not pausing, a build needs a script's CPU and a job's (2 CPUs): three
	// CPUs hold one build, not two.
	capacity := &fleet.Capacity{MilliCpus: 3000, Memory: 64 << 30}
	a.Join(t, fleettest.Hello("raw", "join-secret", capacity))
	first, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: "/first"}})
	if err != nil || first.State != coordinator.Running {
		t.Fatalf("the first build was not sent to the idle agent: %v %+v", err, first)
	}
	if _, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign() != nil }); err != nil {
		t.Fatal(err)
	}

	// Written before the agent read its assignment: all free, nothing held.
	a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Heartbeat{Heartbeat: &fleet.Heartbeat{Free: capacity}}})
	// The coordinator handles an agent's messages in order: once this
	// event is acknowledged, the heartbeat has been taken in.
	ba := &fleet.BuildAttempt{BuildId: first.ID, Attempt: 1}
	a.Send(t, fleettest.Event(t, ba, 1, events.Event{Type: events.BuildStart}))
	if _, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAck() != nil }); err != nil {
		t.Fatal(err)
	}

	second, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: "/second"}})
	if err != nil {
		t.Fatal(err)
	}
	if second.State != coordinator.Queued {
		t.Fatalf("the second build was %s on an agent whose room the first holds; want it queued", second.State)
	}

	// Once the first ends, its room is free again and the second goes.
	a.Send(t, fleettest.Done(ba, events.Success, 1))
	m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign() != nil })
	if err != nil {
		t.Fatal(err)
	}
	if got := m.GetAssign().GetBuild().GetBuildId(); got != second.ID {
		t.Errorf("assigned %s, want the second build %s", got, second.ID)
	}
}

// Between accepting a build and its script taking its share of the ledger
// (the fetch, the workspace, the script container), the agent's ledger does
// not show the build: its heartbeats must count that share as taken.
func TestAnAgentCountsTheRoomOfABuildWhoseScriptHasNotStarted(t *testing.T) {
	// Heartbeats every 5 s, a lease of 15 s: even on a busy machine the
	// build stays this attempt while the test looks.
	f := newFleet(t, 15*time.Second)
	ledger := agent.NewLedger(agent.Resources{MilliCPUs: 2000, Memory: 64 << 30})
	runner, err := agent.NewRunner(agent.Config{Runtime: dockertest.Engine(t), Ledger: ledger, Binary: testbinary.Path(t), StateDir: t.TempDir(), Pause: false,
		AgentID: "test-slow-fetch-" + coordinator.NewID()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = runner.Close(context.Background()) })
	fetching, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	l, err := link.New(link.Config{
		Coordinator: f.addr, JoinToken: "join-secret", Name: "slow-fetch", Runner: runner, Ledger: ledger, StateDir: t.TempDir(),
		Fetch: func(ctx context.Context, _ source.Source, _ string) (string, error) {
			once.Do(func() { close(fetching) })
			<-release
			return "", errors.New("this test stops at the fetch")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	var b coordinator.Build
	wait.For(t, "the agent to take the build", func() bool {
		if b.ID == "" {
			if b, err = f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: "/slow"}}); err != nil {
				t.Fatal(err)
			}
		} else if b, err = f.store.GetBuild(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		return b.State == coordinator.Running
	})
	<-fetching
	// The coordinator took the build's room when it sent it (2 CPUs on an
	// agent that does not pause): 0 free, until a heartbeat that lists the
	// build says what the agent has.
	var free int64
	wait.For(t, "a heartbeat listing the build", func() bool {
		resp, err := f.c.AdminServer().ListAgents(ctx, &fleet.ListAgentsRequest{})
		if err != nil || len(resp.GetAgents()) != 1 {
			t.Fatalf("listing agents: %v %v", resp, err)
		}
		free = resp.GetAgents()[0].GetFreeMilliCpus()
		return free != 0
	})
	if free != 1000 {
		t.Errorf("the agent reports %d millicpus free while its build's script (1 CPU) is still to start; want 1000", free)
	}
	close(release)
	if got := f.waitEnded(t, b.ID); got.Result != events.Error {
		t.Errorf("the build ended %s, want error (its fetch failed)", got.Result)
	}
}
