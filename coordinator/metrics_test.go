package coordinator_test

import (
	"bufio"
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// scrape reads the coordinator's metrics as Prometheus would, by series
// (name and labels as printed).
func scrape(t *testing.T, c *coordinator.Coordinator) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	c.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	series := map[string]float64{}
	lines := bufio.NewScanner(rec.Body)
	for lines.Scan() {
		l := lines.Text()
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		series[l[:i]] = v
	}
	return series
}

func TestMetricsFollowTheQueueTheFleetAndTheBuilds(t *testing.T) {
	f := newFleet(t, time.Minute)
	ctx := context.Background()
	want := func(when string, expect map[string]float64) {
		t.Helper()
		got := scrape(t, f.c)
		for series, v := range expect {
			if got[series] != v {
				t.Errorf("%s: %s = %v, want %v", when, series, got[series], v)
			}
		}
	}

	first, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: "/first"}})
	if err != nil {
		t.Fatal(err)
	}
	canceled, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: "/canceled"}})
	if err != nil {
		t.Fatal(err)
	}
	want("two builds and no agent", map[string]float64{
		"monkeyci_builds_queued": 2, "monkeyci_builds_running": 0, `monkeyci_agents{state="ready"}`: 0,
	})
	if err := f.c.Cancel(ctx, canceled.ID); err != nil {
		t.Fatal(err)
	}
	want("one canceled", map[string]float64{"monkeyci_builds_queued": 1, `monkeyci_builds_ended_total{result="canceled"}`: 1})

	// An agent that does not pause: a build takes 2 of its 3 CPUs.
	a := fleettest.Dial(t, f.addr)
	a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Hello{Hello: fleettest.Hello("raw", "join-secret", &fleet.Capacity{MilliCpus: 3000, Memory: 64 << 30})}})
	m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign() != nil })
	if err != nil || m.GetAssign().GetBuild().GetBuildId() != first.ID {
		t.Fatalf("the queued build was not sent to the agent: %v %v", m, err)
	}
	want("one running", map[string]float64{
		"monkeyci_builds_queued": 0, "monkeyci_builds_running": 1, `monkeyci_agents{state="ready"}`: 1,
		`monkeyci_capacity_cpus{kind="total"}`: 3, `monkeyci_capacity_cpus{kind="used"}`: 2,
		"monkeyci_dispatch_latency_seconds_count": 1,
	})

	// A pause of 1.5 s, reported twice (a resend after a reconnect):
	// counted once.
	ba := &fleet.BuildAttempt{BuildId: first.ID, Attempt: 1}
	resumed := fleettest.Event(t, ba, 1, events.Event{Type: events.ScriptResumed, Duration: 1500 * time.Millisecond})
	for range 2 {
		a.Send(t, resumed)
		if _, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAck() != nil }); err != nil {
			t.Fatal(err)
		}
	}
	want("a pause", map[string]float64{"monkeyci_script_paused_seconds_total": 1.5})

	a.Send(t, fleettest.Done(ba, events.Success, 1))
	if _, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAck().GetDone() }); err != nil {
		t.Fatal(err)
	}
	want("the build ended", map[string]float64{
		"monkeyci_builds_running": 0, `monkeyci_builds_ended_total{result="success"}`: 1,
		`monkeyci_builds_ended_total{result="failure"}`: 0, `monkeyci_capacity_cpus{kind="used"}`: 0,
	})
}
