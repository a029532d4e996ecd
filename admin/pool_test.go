package admin

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

func TestPoolTable(t *testing.T) {
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	created := timestamppb.New(now.Add(-5 * time.Minute))
	p := &fleet.PoolStatusResponse{Configured: true, Provider: "docker", Max: 3, Idle: 1, Desired: 2,
		Instances: []*fleet.PoolInstance{
			{Id: "i1", Phase: "running", Agent: "a1", AgentName: "i1", Connected: true, Builds: 2, Created: created},
			{Id: "i2", Phase: "running", Agent: "a2", AgentName: "i2", Connected: true, Created: created},
			{Id: "i3", Phase: "running", Agent: "a3", AgentName: "i3", Connected: true, Draining: true, Created: created},
			{Id: "i4", Phase: "starting", Created: created},
			{Id: "i5", Phase: "stopping", Agent: "a5", Created: created},
		},
		Decisions: []*fleet.PoolDecision{{Time: timestamppb.New(now), Type: "pool/scale-up", Instances: []string{"i4"}, Reason: "3 queued"}},
	}
	var b strings.Builder
	if err := PoolTable(&b, p, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"pool docker: 5 instances, 2 wanted (min 0, max 3, 1 kept idle)",
		"i1", "busy", "idle", "draining", "not joined", "gone", "pool/scale-up", "i4: 3 queued"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	b.Reset()
	if err := PoolTable(&b, &fleet.PoolStatusResponse{}, now); err != nil || !strings.Contains(b.String(), "no pool") {
		t.Errorf("without a pool: %q %v", b.String(), err)
	}
	if j := Pool(p); len(j.Instances) != 5 || j.Instances[0].Builds != 2 || j.Decisions[0].Type != "pool/scale-up" {
		t.Errorf("json %+v", j)
	}
}
