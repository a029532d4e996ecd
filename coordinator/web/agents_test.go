package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func TestTheAgentsPageShowsWhereTheCPUGoes(t *testing.T) {
	f := newFixture(t)
	a := f.agent(t, "worker-1")
	b := f.running(t, a, "alpha")
	ba := &fleet.BuildAttempt{BuildId: b.ID, Attempt: 1}
	// The script (1 CPU) and a job (1 CPU) run: 2 of 4 CPUs are free. The
	// coordinator takes the agent's messages in order: once the event
	// after the heartbeat is stored, the heartbeat is in.
	a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Heartbeat{Heartbeat: &fleet.Heartbeat{
		Free: &fleet.Capacity{MilliCpus: 2000, Memory: 12 << 30}, Running: []*fleet.BuildAttempt{ba},
	}}})
	a.events(t, b.ID, ev(events.BuildStart, "", 0), ev(events.ScriptStart, "", 0))

	c := f.client(t, f.viewer)
	s := c.stream(t, "/agents/events")
	first := sections(t, s.until(t, "worker-1"))
	for _, want := range []string{"os=linux", "status-ready", "(1 running, 0 paused)", `seg-jobs" style="width: 25.00%"`, `seg-scripts" style="width: 25.00%"`, `seg-free" style="width: 50.00%"`} {
		if !strings.Contains(first["agents-rows"], want) {
			t.Errorf("the agents' rows lack %q:\n%s", want, first["agents-rows"])
		}
	}

	// The script pauses: its CPU goes to the job, which the bar shows lent.
	a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Heartbeat{Heartbeat: &fleet.Heartbeat{
		Free: &fleet.Capacity{MilliCpus: 3000, Memory: 12 << 30}, Running: []*fleet.BuildAttempt{ba},
	}}})
	a.events(t, b.ID, ev(events.ScriptPaused, "", time.Second))
	got := sections(t, s.until(t, "1 paused"))
	for _, want := range []string{"(0 running, 1 paused)", `seg-paused" style="width: 25.00%"`, `seg-scripts" style="width: 0.00%"`, `seg-free" style="width: 75.00%"`} {
		if !strings.Contains(got["agents-rows"], want) {
			t.Errorf("after the pause the agents' rows lack %q:\n%s", want, got["agents-rows"])
		}
	}

	resp, body := c.get(t, "/agents")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "(0 running, 1 paused)") || !strings.Contains(body, "paused scripts (their CPU lent to jobs)") {
		t.Errorf("the agents page (%s) does not show the paused script:\n%s", resp.Status, body)
	}
	if strings.Contains(body, "<h2>Pool</h2>") {
		t.Error("a pool is shown where none runs")
	}
}

// poolView is a pool's scaler as the coordinator shows it.
type poolView struct{ st pool.State }

func (p poolView) Status() pool.State { return p.st }

func TestTheAgentsPageShowsThePool(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	f.c.UsePool(poolView{pool.State{
		Desired:   2,
		Instances: map[string]*pool.Tracked{"ocid1.instance.a": {ID: "ocid1.instance.a", Created: now, Phase: pool.Starting}},
		Decisions: []pool.Decision{{Time: now, Type: events.PoolScaleUp, Instances: []string{"ocid1.instance.a"}, Reason: "3 builds queued, 0 agents"}},
	}}, coordinator.PoolInfo{Provider: "oci", Min: 0, Max: 5, Idle: 1})
	_, body := f.client(t, f.viewer).get(t, "/agents")
	for _, want := range []string{"<h2>Pool</h2>", "<strong>oci</strong>", "0 to 5 instances", "ocid1.instance.a", "starting (not connected)", "pool/scale-up", "3 builds queued, 0 agents"} {
		if !strings.Contains(body, want) {
			t.Errorf("the agents page lacks %q", want)
		}
	}
}
