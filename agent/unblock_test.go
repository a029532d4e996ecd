package agent_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/wait"
)

const gated = `
- id: a
  image: monkeyci/busybox:latest
  script: ["echo a"]
- id: gate
  image: monkeyci/busybox:latest
  blocked: true
  dependencies: [a]
  script: ["echo gate"]
- id: b
  image: monkeyci/busybox:latest
  dependencies: [gate]
  script: ["echo b"]
`

// A blocked job waits for a person with its script paused, holding no CPU;
// once unblocked it runs, and its dependent after it.
func TestBlockedJobWaitsWithTheScriptPausedUntilUnblocked(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, gated, map[string]string{})
	rec := newRecorder()
	type ran struct {
		out agent.Outcome
		err error
	}
	done := make(chan ran, 1)
	go func() {
		out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir, Unblockable: true}, rec)
		done <- ran{out, err}
	}()
	blocked := rec.waitFor(t, "job/blocked", func(e events.Event) bool { return e.Type == events.JobBlocked })
	if blocked.Job != "gate" || blocked.Message != "waits for a manual unblock" {
		t.Errorf("job/blocked = %+v, want gate waiting for a manual unblock", blocked)
	}
	// The gate is not queued yet: job/blocked is where the graph learns
	// its edges.
	if !slices.Equal(blocked.Deps, []string{"a"}) {
		t.Errorf("job/blocked deps = %q, want [a]", blocked.Deps)
	}
	// The script waits for a and the unblock side by side (the gate can be
	// approved while a runs); the pause that matters is the one once a
	// ended, when the unblock is all it waits for.
	seen := false
	rec.waitFor(t, "script/paused after a ended", func(e events.Event) bool {
		seen = seen || e.Type == events.JobEnd && e.Job == "a"
		return seen && e.Type == events.ScriptPaused
	})
	script := scriptContainer(t, f, blocked.Build)
	wait.For(t, "the script container paused while it waits for an unblock", func() bool {
		state, err := f.engine.State(context.Background(), script)
		return err == nil && state == "paused"
	})
	if used := f.ledger.Used(); used.MilliCPUs != 0 {
		t.Errorf("the waiting build holds %d milli-CPUs, want none", used.MilliCPUs)
	}
	if n := rec.count(events.JobQueued); n != 1 {
		t.Errorf("%d jobs queued before the unblock, want a alone", n)
	}

	if err := f.runner.Unblock(blocked.Build, "gate"); err != nil {
		t.Fatal(err)
	}
	if err := f.runner.Unblock(blocked.Build, "gate"); err != nil { // repeated: a no-op
		t.Fatal(err)
	}
	var r ran
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the build did not end within 2 minutes of the unblock")
	}
	if r.err != nil || r.out.Result != events.Success {
		t.Fatalf("%v %+v", r.err, r.out)
	}
	var order []string
	for _, e := range r.out.Jobs {
		order = append(order, e.ID)
	}
	if strings.Join(order, " ") != "a gate b" {
		t.Errorf("jobs %v, want a, gate, b", order)
	}
	if got := rec.out("b"); got != "b\n" {
		t.Errorf("b printed %q", got)
	}
	// In order: the wait, the unblock told once, then gate runs, then b.
	var seq []string
	for _, e := range rec.all() {
		switch {
		case e.Type == events.JobBlocked, e.Type == events.JobUnblocked,
			e.Job == "gate" && (e.Type == events.JobQueued || e.Type == events.JobEnd),
			e.Job == "b" && e.Type == events.JobQueued:
			seq = append(seq, string(e.Type)+" "+e.Job)
		}
	}
	want := "job/blocked gate, job/unblocked gate, job/queued gate, job/end gate, job/queued b"
	if got := strings.Join(seq, ", "); got != want {
		t.Errorf("events %s\nwant %s", got, want)
	}
	if err := f.runner.Unblock(blocked.Build, "gate"); !errors.Is(err, agent.ErrUnknownBuild) {
		t.Errorf("unblock after the build: %v, want ErrUnknownBuild", err)
	}
}

// A build run without a coordinator (monkeyci run) has nobody to unblock a
// job: the blocked job and its dependents are skipped, saying so.
func TestBlockedJobIsSkippedWhenNobodyCanUnblockIt(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, gated, map[string]string{})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if j := jobResult(t, out, "a"); j.Result != events.Success {
		t.Errorf("a: %+v", j)
	}
	if j := jobResult(t, out, "gate"); j.Result != events.Skipped || j.Message != "blocked: waits for a manual unblock, which this run cannot give" {
		t.Errorf("gate: %+v, want skipped as nobody can unblock it", j)
	}
	if j := jobResult(t, out, "b"); j.Result != events.Skipped {
		t.Errorf("b: %+v, want skipped", j)
	}
	if n := rec.count(events.JobBlocked); n != 0 {
		t.Errorf("%d job/blocked events from a build nobody can unblock", n)
	}
}

// A build canceled while its script waits, frozen, for an unblock ends
// canceled, and leaves nothing behind (the fixture checks).
func TestBuildCanceledWhileItWaitsForAnUnblock(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, gated, map[string]string{})
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan agent.Outcome, 1)
	go func() {
		out, err := f.runner.Run(ctx, agent.BuildSpec{Source: dir, Unblockable: true}, rec)
		if err != nil {
			t.Error(err)
		}
		done <- out
	}()
	seen := false
	rec.waitFor(t, "script/paused after job/blocked", func(e events.Event) bool {
		seen = seen || e.Type == events.JobBlocked
		return seen && e.Type == events.ScriptPaused
	})
	cancel()
	select {
	case out := <-done:
		if out.Result != events.Canceled {
			t.Errorf("result %s, want canceled: %+v", out.Result, out)
		}
	case <-time.After(time.Minute):
		t.Fatal("the build did not end within a minute of its cancel")
	}
}
