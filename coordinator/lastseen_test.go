package coordinator_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// An agent's "last seen" is its last heartbeat: not its join, not the end
// of its stream; connected or not.
func TestAnAgentIsLastSeenAtItsLastHeartbeat(t *testing.T) {
	var clock atomic.Int64
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	clock.Store(t0.UnixNano())
	at := func(d time.Duration) { clock.Store(t0.Add(d).UnixNano()) }
	f := newFleet(t, time.Hour, func(c *coordinator.Config) {
		c.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	a, w := recoveryAgent(t, f, "beating")
	seen := func() time.Time {
		t.Helper()
		r, err := f.c.AdminServer().ListAgents(context.Background(), &fleet.ListAgentsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range r.GetAgents() {
			if info.GetId() == w.GetId() {
				return info.GetLastSeen().AsTime()
			}
		}
		t.Fatalf("agent %s is not listed", w.GetId())
		return time.Time{}
	}
	waitSeen := func(want time.Time, what string) {
		t.Helper()
		wait.Within(t, fleettest.Wait, fmt.Sprintf("%s: last seen %s", what, want), func() bool { return seen().Equal(want) })
	}
	waitSeen(t0, "just joined")

	at(time.Minute)
	a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Heartbeat{Heartbeat: &fleet.Heartbeat{Free: &fleet.Capacity{MilliCpus: 1000, Memory: 4 << 30}}}})
	waitSeen(t0.Add(time.Minute), "after a heartbeat")

	// Gone an hour later without another heartbeat: seen at the last one.
	at(time.Hour)
	a.Hangup(t)
	wait.Within(t, fleettest.Wait, "the agent that hung up listed as lost", func() bool {
		r, err := f.c.AdminServer().ListAgents(context.Background(), &fleet.ListAgentsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return len(r.GetAgents()) == 1 && r.GetAgents()[0].GetState() == "lost"
	})
	waitSeen(t0.Add(time.Minute), "after its stream ended")
}
