package agent_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/events"
)

// scriptLast is a runtime that holds the start of a build's script
// container until a job's container has started, or until a minute has
// gone: a job that starts only once the script asks for it then starts
// a minute late, and after the script.
type scriptLast struct {
	agent.Runtime
	mu      sync.Mutex
	scripts map[string]bool // container ids, made for a script
	jobRan  chan struct{}
	once    sync.Once
}

func (r *scriptLast) Create(ctx context.Context, spec agent.ContainerSpec) (string, error) {
	id, err := r.Runtime.Create(ctx, spec)
	if err == nil && spec.Labels[agent.LabelRole] == "script" {
		r.mu.Lock()
		r.scripts[id] = true
		r.mu.Unlock()
	}
	return id, err
}

func (r *scriptLast) Start(ctx context.Context, id string) error {
	r.mu.Lock()
	script := r.scripts[id]
	r.mu.Unlock()
	if !script {
		err := r.Runtime.Start(ctx, id)
		r.once.Do(func() { close(r.jobRan) })
		return err
	}
	select {
	case <-r.jobRan:
	case <-time.After(time.Minute):
	}
	return r.Runtime.Start(ctx, id)
}

// A declarative build's first jobs start while its script container
// starts, not once the script asks for them: the script then finds them
// started, and each runs once.
func TestTheFirstJobsStartAheadOfTheScript(t *testing.T) {
	var rt *scriptLast
	f := newFixtureWith(t, twoCPUs, true, func(c *agent.Config) {
		rt = &scriptLast{Runtime: c.Runtime, scripts: map[string]bool{}, jobRan: make(chan struct{})}
		c.Runtime = rt
	})
	src := repo(t, `
- {id: first, image: monkeyci/busybox:latest, script: ["echo first $GREETING"]}
- {id: second, image: monkeyci/busybox:latest, script: ["echo second"]}
- {id: after, image: monkeyci/busybox:latest, script: ["echo after"], dependencies: [first, second]}
`, map[string]string{})
	dir := t.TempDir()
	fetch := func(context.Context) error { return os.CopyFS(dir, os.DirFS(src)) }
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir, Snapshot: true, Fetch: fetch, Params: map[string]string{"GREETING": "hi"}}, rec)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%v %+v", err, out)
	}
	var order []string
	for _, e := range rec.all() {
		switch {
		case e.Type == events.ScriptStart:
			order = append(order, "script")
		case e.Type == events.JobStart:
			order = append(order, e.Job)
		}
	}
	// Each job once, one of the first two before the script.
	if len(order) != 4 || order[0] == "script" || order[3] != "after" {
		t.Errorf("the jobs and the script started in the order %v, want a first job before the script, and after last", order)
	}
	for job, want := range map[string]string{"first": "first hi\n", "second": "second\n", "after": "after\n"} {
		if got := rec.out(job); got != want {
			t.Errorf("job %s printed %q, want %q", job, got, want)
		}
	}
}

// What a job started ahead writes in the workspace's .monkeyci/ is not
// what the script reads: it reads the build files as fetched, and drives
// the build they say (a first job that generates code, or checks another
// commit out, may write there).
func TestAJobStartedAheadCannotChangeWhatTheScriptReads(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	src := repo(t, `
- id: first
  image: monkeyci/busybox:latest
  script:
    - printf 'echo hi\n' > .monkeyci/build.sh
    - sed -i 's/echo after/echo changed/' .monkeyci/build.yaml
- {id: after, image: monkeyci/busybox:latest, script: ["echo after"], dependencies: [first]}
`, map[string]string{})
	dir := t.TempDir()
	fetch := func(context.Context) error { return os.CopyFS(dir, os.DirFS(src)) }
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir, Snapshot: true, Fetch: fetch}, rec)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%v %+v", err, out)
	}
	if got := rec.out("after"); got != "after\n" {
		t.Errorf("the dependent job printed %q, want what the fetched build file says", got)
	}
}
