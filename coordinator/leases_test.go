package coordinator

import "testing"

// Only the current attempt, on its agent, may report; an ended or
// replaced attempt may not.
func TestOnlyTheCurrentAttemptOnItsAgentMayReport(t *testing.T) {
	leases := newLeaseTable()
	leases.start("b1", lease{attempt: 2, agent: "a1"})
	for _, c := range []struct {
		build   string
		attempt int
		agent   string
		want    string
	}{
		{"b1", 2, "a1", ""},
		{"b1", 1, "a1", "attempt 1 of build b1 is stale: the current attempt is 2"},
		{"b1", 2, "a2", "build b1 runs on another agent"},
		{"b2", 1, "a1", "build b2 is not running (unknown, ended, or sent back to the queue)"},
	} {
		if got := leases.whyNotCurrent(c.build, c.attempt, c.agent); got != c.want {
			t.Errorf("attempt %d of %s on %s: %q, want %q", c.attempt, c.build, c.agent, got, c.want)
		}
	}

	if _, ok := leases.end("b1", 1); ok {
		t.Error("a stale attempt ended the current one")
	}
	old, replaced := leases.start("b1", lease{attempt: 3, agent: "a2"})
	if !replaced || old.attempt != 2 || old.agent != "a1" {
		t.Errorf("replacing attempt 2: got %+v %v", old, replaced)
	}
	if l, ok := leases.end("b1", 3); !ok || l.agent != "a2" {
		t.Errorf("ending attempt 3: %+v %v", l, ok)
	}
	if got := leases.whyNotCurrent("b1", 3, "a2"); got == "" || leases.count() != 0 {
		t.Errorf("an ended build still runs: %q, %d running", got, leases.count())
	}
}

// The lease counts an attempt's events stored in order; past a gap, or
// for an attempt loaded at start, only the store knows, and what it says
// is kept.
func TestTheLeaseCountsEventsStoredInOrder(t *testing.T) {
	leases := newLeaseTable()
	leases.start("b1", lease{attempt: 1, agent: "a1"})
	step := func(seq, wantThrough int64, wantKnown bool) {
		t.Helper()
		through, known := leases.storedThroughAfter("b1", 1, seq)
		if known != wantKnown || known && through != wantThrough {
			t.Errorf("after event %d: %d known %v, want %d known %v", seq, through, known, wantThrough, wantKnown)
		}
	}
	step(1, 1, true)
	step(2, 2, true)
	step(2, 2, true) // resent
	step(1, 2, true) // resent, older
	step(4, 0, false)
	step(3, 0, false) // past a gap once: the store is asked from then on
	if got := leases.storedThrough("b1", 1); got != 2 {
		t.Errorf("stored through %d, want 2 until the store says more", got)
	}
	leases.raiseStoredThrough("b1", 1, 4)
	leases.raiseStoredThrough("b1", 1, 3) // never lowered
	if got := leases.storedThrough("b1", 1); got != 4 {
		t.Errorf("stored through %d, want the store's 4", got)
	}
	if got := leases.storedThrough("b1", 2); got != -1 {
		t.Errorf("another attempt: %d, want unknown (-1)", got)
	}

	leases.start("loaded", lease{attempt: 1, agent: "a1", storedThrough: -1})
	if _, known := leases.storedThroughAfter("loaded", 1, 1); known {
		t.Error("an attempt loaded at start claims to know what is stored")
	}
}

// A later pause or resume wins, whatever order they come in.
func TestALaterPauseOrResumeWins(t *testing.T) {
	leases := newLeaseTable()
	leases.start("b1", lease{attempt: 1, agent: "a1"})
	leases.start("b2", lease{attempt: 1, agent: "a1"})
	leases.notePause("b1", 1, 5, true)
	leases.notePause("b1", 1, 4, false) // older: ignored
	leases.notePause("b2", 1, 3, true)
	leases.notePause("b2", 1, 6, false)
	leases.notePause("b2", 2, 9, true) // another attempt: ignored
	if got := leases.pausedAmong([]string{"b1", "b2", "gone"}); got != 1 {
		t.Errorf("%d paused, want 1 (b1)", got)
	}
}
