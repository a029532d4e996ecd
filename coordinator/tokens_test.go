package coordinator

import (
	"testing"
	"time"
)

// A token's use is written at most once a minute: a busy token costs
// one store write a minute, not one a call.
func TestATokensUseIsWrittenAtMostOnceAMinute(t *testing.T) {
	var u tokenUses
	t0 := time.Unix(1_000_000, 0)
	for i, c := range []struct {
		hash string
		at   time.Duration
		due  bool
	}{
		{"a", 0, true},
		{"a", time.Second, false},
		{"a", 59 * time.Second, false},
		{"b", 59 * time.Second, true}, // per token
		{"a", time.Minute, true},
		{"a", time.Minute + time.Second, false},
		{"b", time.Minute, false},
	} {
		if got := u.due(c.hash, t0.Add(c.at)); got != c.due {
			t.Errorf("%d: use of %s at +%s: due %v, want %v", i, c.hash, c.at, got, c.due)
		}
	}
	u.forget("a") // revoked: a token made again with the same hash starts afresh
	if !u.due("a", t0.Add(61*time.Second)) {
		t.Error("a forgotten token's use is not written")
	}
}
