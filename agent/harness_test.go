package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/docker"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/testbinary"
)

const busybox = "monkeyci/busybox:latest"

// recorder is a Reporter that keeps everything and lets a test wait for an
// event.
type recorder struct {
	mu      sync.Mutex
	events  []events.Event
	output  map[string]*strings.Builder
	changed chan struct{}
}

func newRecorder() *recorder {
	return &recorder{output: map[string]*strings.Builder{}, changed: make(chan struct{})}
}

func (r *recorder) Event(e events.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *recorder) Output(job, stream string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.output[job+"/"+stream]
	if !ok {
		b = &strings.Builder{}
		r.output[job+"/"+stream] = b
	}
	b.Write(data)
}

func (r *recorder) out(job string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.output[job+"/out"]; ok {
		return b.String()
	}
	return ""
}

// waitFor blocks until an event matching match was recorded.
func (r *recorder) waitFor(t *testing.T, what string, match func(events.Event) bool) events.Event {
	t.Helper()
	deadline := time.After(2 * time.Minute)
	seen := 0
	for {
		r.mu.Lock()
		evs, ch := r.events[seen:], r.changed
		seen = len(r.events)
		r.mu.Unlock()
		for _, e := range evs {
			if match(e) {
				return e
			}
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no %s event within 2 minutes", what)
		}
	}
}

func (r *recorder) all() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.events...)
}

func (r *recorder) count(typ events.Type) int {
	n := 0
	for _, e := range r.all() {
		if e.Type == typ {
			n++
		}
	}
	return n
}

type fixture struct {
	engine *docker.Engine
	runner *agent.Runner
	ledger *agent.Ledger
	agent  string
	caches string // the runner's CacheDir
}

// newFixture makes a runner on the real engine with the given capacity.
// Everything is labelled with a fresh agent id, and the test fails if
// anything with that label is left when it ends.
func newFixture(t *testing.T, capacity agent.Resources, pause bool) *fixture {
	t.Helper()
	return newFixtureWith(t, capacity, pause, func(*agent.Config) {})
}

// newFixtureWith is newFixture with the runner's config changed by edit.
func newFixtureWith(t *testing.T, capacity agent.Resources, pause bool, edit func(*agent.Config)) *fixture {
	t.Helper()
	engine := dockertest.Engine(t)
	dockertest.RequireImage(t, busybox)
	f := &fixture{engine: engine, ledger: agent.NewLedger(capacity), agent: "test-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), caches: t.TempDir()}
	cfg := agent.Config{
		Runtime:  engine,
		Ledger:   f.ledger,
		Logger:   hclog.New(&hclog.LoggerOptions{Name: "test", Level: hclog.Warn, Output: os.Stderr}),
		Binary:   testbinary.Path(t),
		StateDir: t.TempDir(),
		CacheDir: f.caches,
		Pause:    pause,
		AgentID:  f.agent,
	}
	edit(&cfg)
	runner, err := agent.NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.runner = runner
	// Close last: what it sweeps, the builds' own cleanup must have removed.
	t.Cleanup(func() { _ = runner.Close(context.Background()) })
	t.Cleanup(func() { f.assertNothingLeft(t) })
	return f
}

func (f *fixture) assertNothingLeft(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{agent.LabelAgent: f.agent}
	cs, err := f.engine.ListContainers(ctx, labels)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := f.engine.ListVolumes(ctx, labels)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := f.engine.ListNetworks(ctx, labels)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs)+len(vs)+len(ns) > 0 {
		t.Errorf("left behind: containers %v, volumes %v, networks %v", cs, vs, ns)
	}
	for _, c := range cs {
		_ = f.engine.Remove(ctx, c)
	}
	for _, v := range vs {
		_ = f.engine.RemoveVolume(ctx, v)
	}
	for _, n := range ns {
		_ = f.engine.RemoveNetwork(ctx, n)
	}
}

// repo writes a repository with the given build.yaml and extra files.
func repo(t *testing.T, buildYAML string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files[".monkeyci/build.yaml"] = buildYAML
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func jobResult(t *testing.T, out agent.Outcome, id string) agent.JobOutcome {
	t.Helper()
	for _, j := range out.Jobs {
		if j.ID == id {
			return j
		}
	}
	t.Fatalf("no job %s in outcome %+v", id, out)
	return agent.JobOutcome{}
}

var twoCPUs = agent.Resources{MilliCPUs: 2000, Memory: 8 << 30}
