package coordinator

import (
	"strings"
	"testing"
)

// What a hand-back may ask is decided by a build file: hostile input. It
// may add an arch label, never another label, nor change one the build
// was queued with.
func TestRefusedNeeds(t *testing.T) {
	for _, c := range []struct {
		labels, needs map[string]string
		refused       string
	}{
		{nil, map[string]string{"arch": "arm"}, ""},
		{map[string]string{"os": "linux"}, map[string]string{"arch": "arm"}, ""},
		{map[string]string{"arch": "arm"}, map[string]string{"arch": "arm"}, ""},
		{map[string]string{"arch": "amd"}, map[string]string{"arch": "arm"}, "queued for arch=amd"},
		{nil, map[string]string{"pool": "gpu"}, "only arch=amd or arch=arm"},
		{map[string]string{"os": "linux"}, map[string]string{"os": "windows"}, "only arch=amd or arch=arm"},
		{nil, map[string]string{"arch": "riscv"}, "only arch=amd or arch=arm"},
	} {
		got := refusedNeeds(c.labels, c.needs)
		if c.refused == "" && got != "" || c.refused != "" && !strings.Contains(got, c.refused) {
			t.Errorf("refusedNeeds(%v, %v) = %q, want %q", c.labels, c.needs, got, c.refused)
		}
	}
}
