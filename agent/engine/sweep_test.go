package engine_test

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/monkeyci/monkeyci/agent/engine"
)

// SweepAgent removes what carries the agent's label, and only that.
func TestSweepAgent(t *testing.T) {
	rt := newFakeEngine()
	mine := map[string]string{engine.LabelAgent: "a1", "io.monkeyci.build": "b"}
	other := map[string]string{engine.LabelAgent: "a2"}
	rt.containers = map[string]map[string]string{"c1": mine, "c2": mine, "c3": other}
	rt.volumes = map[string]map[string]string{"v1": mine, "v2": other}
	rt.networks = map[string]map[string]string{"n1": mine, "n2": other}

	n, err := engine.SweepAgent(context.Background(), rt, "a1")
	if err != nil || n != 4 {
		t.Fatalf("swept %d, %v; want 4", n, err)
	}
	for what, m := range map[string]map[string]map[string]string{"containers": rt.containers, "volumes": rt.volumes, "networks": rt.networks} {
		if left := slices.Sorted(maps.Keys(m)); len(left) != 1 || m[left[0]][engine.LabelAgent] != "a2" {
			t.Errorf("%s left: %v; want only the other agent's", what, left)
		}
	}
}
