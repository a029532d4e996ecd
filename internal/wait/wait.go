// Package wait is how tests wait for what happens on its own time: a
// condition is polled, often at first and less so later, until it holds or
// a generous bound passes; then the test fails, saying what never came.
// Tests wait on what they expect to see, never on a sleep that hopes.
package wait

import (
	"testing"
	"time"
)

// Bound is how long For waits: far beyond what anything takes on a loaded
// machine, so that only what never comes fails.
const Bound = 2 * time.Minute

// For waits until cond returns true, failing t (Fatal) after Bound with
// "never: <what>". cond runs on the test's goroutine, so it may call t's
// methods.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Within(t, Bound, what, cond)
}

// Within is For with another bound.
func Within(t testing.TB, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(bound, cond) {
		t.Fatalf("never, within %s: %s", bound, what)
	}
}

// Poll calls cond until it returns true (then true) or bound has passed
// (then false): for a caller that says itself what went wrong.
func Poll(bound time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(bound)
	pause := time.Millisecond
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}
