package agent_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// The artifact is saved from a work dir outside the workspace (so only
// the archive can carry it) and lands where the restoring job says.
func TestArtifactPassesToDependentWhileThirdRunsBeside(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, `
- id: compile
  image: monkeyci/busybox:latest
  work-dir: /build
  script:
    - mkdir -p out/bin
    - echo "built from $(cat /workspace/source.txt)" > out/bin/app
  save-artifacts:
    - {id: app, path: out/bin}
- id: lint
  image: monkeyci/busybox:latest
  script: ["echo linting"]
- id: test
  image: monkeyci/busybox:latest
  dependencies: [compile]
  restore-artifacts:
    - {id: app, path: other}
  script: ["cat other/app", "test ! -e out && test ! -e /build && test ! -e /out"]
`, map[string]string{"source.txt": "v1"})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != events.Success {
		t.Fatalf("result %s, want success: %+v\n%s", out.Result, out, rec.out("test"))
	}
	if got := rec.out("test"); !strings.Contains(got, "built from v1") {
		t.Errorf("test job printed %q, want the artifact's content", got)
	}
	if got := rec.out("lint"); !strings.Contains(got, "linting") {
		t.Errorf("lint job printed %q", got)
	}
}

func TestScriptIsPausedWhileJobRuns(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, `
id: sleeper
image: monkeyci/busybox:latest
script: ["sleep 3"]
`, map[string]string{})
	rec := newRecorder()
	done := make(chan agent.Outcome, 1)
	go func() {
		out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
		if err != nil {
			t.Error(err)
		}
		done <- out
	}()
	paused := rec.waitFor(t, "script/paused", func(e events.Event) bool { return e.Type == events.ScriptPaused })
	script := scriptContainer(t, f, paused.Build)
	ctx := context.Background()
	// The engine reports the new state a moment after the pause call
	// returns; the job may also end meanwhile, which the events tell.
	wait.For(t, "the script container paused after script/paused", func() bool {
		state, err := f.engine.State(ctx, script)
		return err == nil && state == "paused" || rec.count(events.ScriptResumed) > 0
	})
	rec.waitFor(t, "script/resumed", func(e events.Event) bool { return e.Type == events.ScriptResumed })
	// Running again (or already ended, or removed): anything but paused.
	wait.For(t, "the script container running again after script/resumed", func() bool {
		state, err := f.engine.State(ctx, script)
		return err != nil || state != "paused"
	})
	out := <-done
	if out.Result != events.Success {
		t.Fatalf("result %s: %+v", out.Result, out)
	}
	if out.Pauses == 0 || out.Paused <= 0 {
		t.Errorf("outcome says %d pauses, %s paused", out.Pauses, out.Paused)
	}
	// The resume comes before the job's end is answered: the order of events.
	var order []events.Type
	for _, e := range rec.all() {
		switch e.Type {
		case events.ScriptPaused, events.ScriptResumed, events.JobEnd:
			order = append(order, e.Type)
		}
	}
	want := []events.Type{events.ScriptPaused, events.JobEnd, events.ScriptResumed}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Errorf("event order %v, want %v", order, want)
	}
}

func TestRunningScriptIsNotPausedWhenPausingIsOff(t *testing.T) {
	f := newFixture(t, twoCPUs, false)
	dir := repo(t, "id: a\nimage: monkeyci/busybox:latest\nscript: [\"sleep 1\"]\n", map[string]string{})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%v %+v", err, out)
	}
	if n := rec.count(events.ScriptPaused); n != 0 {
		t.Errorf("%d script/paused events with --pause=false", n)
	}
}

// scriptContainer finds the build's script container by its labels.
func scriptContainer(t *testing.T, f *fixture, build string) string {
	t.Helper()
	ids, err := f.engine.ListContainers(context.Background(), map[string]string{agent.LabelBuild: build, agent.LabelRole: "script"})
	if err != nil || len(ids) != 1 {
		t.Fatalf("script container of %s: %v %v", build, ids, err)
	}
	return ids[0]
}

func TestFailingLineFailsJobAndSkipsDependents(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, `
- id: first
  image: monkeyci/busybox:latest
  script: ["true", "echo about to fail", "exit 3", "echo never"]
- id: second
  image: monkeyci/busybox:latest
  dependencies: [first]
  script: ["echo should not run"]
- id: third
  image: monkeyci/busybox:latest
  dependencies: [second]
  script: ["echo should not run"]
`, map[string]string{})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != events.Failure {
		t.Fatalf("result %s, want failure", out.Result)
	}
	first := jobResult(t, out, "first")
	if first.Result != events.Failure || first.Exit != 3 || first.Message != "command 3 failed with exit code 3: exit 3" {
		t.Errorf("first: %+v, want failure of command 3 (counted from 1, its text shown) with exit code 3", first)
	}
	if strings.Contains(rec.out("first"), "never") {
		t.Error("the line after the failing one ran")
	}
	for _, id := range []string{"second", "third"} {
		if j := jobResult(t, out, id); j.Result != events.Skipped {
			t.Errorf("%s: %+v, want skipped", id, j)
		}
	}
	end := rec.waitFor(t, "container/script-end", func(e events.Event) bool { return e.Type == events.ContainerScriptEnd })
	if end.Step != "2" || end.Exit == nil || *end.Exit != 3 {
		t.Errorf("script-end event %+v, want step 2, exit 3", end)
	}
}

func TestTenThousandLinesThenExitLosesNone(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, `
id: chatty
image: monkeyci/busybox:latest
script: ["seq 1 10000"]
`, map[string]string{})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%v %+v", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(rec.out("chatty"), "\n"), "\n")
	if len(lines) != 10000 || lines[0] != "1" || lines[9999] != "10000" {
		t.Fatalf("got %d lines (first %q, last %q), want 1..10000", len(lines), lines[0], lines[len(lines)-1])
	}
}

func TestJobLargerThanCapacityFailsAtOnce(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, `
id: huge
image: monkeyci/busybox:latest
cpus: 64
script: ["true"]
`, map[string]string{})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil {
		t.Fatal(err)
	}
	j := jobResult(t, out, "huge")
	if j.Result != events.Error || !strings.Contains(j.Message, "64 CPUs") || !strings.Contains(j.Message, "has 2") {
		t.Errorf("huge: %+v, want an error saying it needs 64 CPUs and the agent has 2", j)
	}
	if out.Result == events.Success {
		t.Error("build succeeded")
	}
	if rec.count(events.JobStart) != 0 {
		t.Error("the job's container was started")
	}
}

func TestCancelRemovesEverything(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, `
- id: long
  image: monkeyci/busybox:latest
  script: ["sleep 300"]
- id: other
  image: monkeyci/busybox:latest
  script: ["sleep 300"]
`, map[string]string{})
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan agent.Outcome, 1)
	go func() {
		out, _ := f.runner.Run(ctx, agent.BuildSpec{Source: dir}, rec)
		done <- out
	}()
	rec.waitFor(t, "job/start", func(e events.Event) bool { return e.Type == events.JobStart })
	cancel()
	out := <-done
	if out.Result != events.Canceled {
		t.Errorf("result %s, want canceled", out.Result)
	}
	// newFixture's cleanup fails the test if anything is left.
}
