package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/link"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/coordinator/sqlstore"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/forge/status"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
	"github.com/monkeyci/monkeyci/secret"
)

// fleetFixture is a coordinator on loopback gRPC with its real stores.
type fleetFixture struct {
	dir   string // the data dir: the store, the logs, the master key
	c     *coordinator.Coordinator
	store *sqlstore.Store
	// disk is where logs are written; logs where the coordinator reads
	// them (from blobs too, once a build ended).
	disk  *logstore.Store
	logs  coordinator.LogStore
	blobs blob.Store
	addr  string
}

// newFleet starts the fixture; opts change the coordinator's config.
func newFleet(t *testing.T, lease time.Duration, opts ...func(*coordinator.Config)) *fleetFixture {
	t.Helper()
	dir, store, logs := fleettest.Stores(t)
	keys, err := secret.LoadKeyring(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "coordinator", Level: hclog.Warn, Output: os.Stderr})
	statuses := status.NewReporter(&status.Client{Backoff: time.Millisecond}, log)
	t.Cleanup(func() { _ = statuses.Close(context.Background()) })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	blobs, err := blob.OpenDir(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.Config{
		Store: store, Logs: logs, Blobs: blobs, JoinToken: "join-secret", AdminToken: "admin-secret", Lease: lease, Logger: log,
		Keys: keys, Statuses: statuses, PublicURL: "http://ci.example",
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := coordinator.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(ctx)
	srv := grpc.NewServer(c.Interceptors()...)
	fleet.RegisterFleetServer(srv, c.FleetServer())
	fleet.RegisterAdminServer(srv, c.AdminServer())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return &fleetFixture{dir: dir, c: c, store: store, disk: logs, logs: c.Logs(), blobs: cfg.Blobs, addr: l.Addr().String()}
}

// readLog is a stream as the coordinator stored it (at most 1 MiB of it).
func (f *fleetFixture) readLog(t *testing.T, key logstore.Key) string {
	t.Helper()
	out := make([]byte, 1<<20)
	n, err := f.logs.ReadAt(key, 0, out)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return string(out[:n])
}

// webhooks serves the coordinator's webhook handler at /webhooks/{forge},
// until the test ends.
func (f *fleetFixture) webhooks(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{forge}", f.c.WebhookHandler())
	hooks := httptest.NewServer(mux)
	t.Cleanup(hooks.Close)
	return hooks
}

// startAgent runs an agent in this process against the fixture.
func (f *fleetFixture) startAgent(t *testing.T, name string, capacity agent.Resources) (*link.Link, context.CancelFunc) {
	t.Helper()
	return f.startArchAgent(t, name, capacity, "")
}

// startArchAgent is startAgent for an agent that runs jobs of arch, as
// its label says ("": the machine's, and no label).
func (f *fleetFixture) startArchAgent(t *testing.T, name string, capacity agent.Resources, arch string) (*link.Link, context.CancelFunc) {
	t.Helper()
	return f.startAgentWith(t, name, capacity, arch, t.TempDir())
}

// startAgentIn is startAgent with a state dir of the test's choosing.
func (f *fleetFixture) startAgentIn(t *testing.T, name, stateDir string) (*link.Link, context.CancelFunc) {
	t.Helper()
	return f.startAgentWith(t, name, agent.Resources{MilliCPUs: 2000, Memory: 8 << 30}, "", stateDir)
}

func (f *fleetFixture) startAgentWith(t *testing.T, name string, capacity agent.Resources, arch, stateDir string) (*link.Link, context.CancelFunc) {
	t.Helper()
	var labels map[string]string
	if arch != "" {
		labels = map[string]string{agent.LabelArch: arch}
	}
	engine := dockertest.Engine(t)
	ledger := agent.NewLedger(capacity)
	// Unique per run: a sweep by another test process must not meet ours.
	agentID := "test-" + name + "-" + coordinator.NewID()[:8]
	runner, err := agent.NewRunner(agent.Config{
		Runtime: engine, Ledger: ledger, Binary: testbinary.Path(t), StateDir: stateDir, Pause: true, AgentID: agentID, Arch: arch,
		Logger: hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: os.Stderr}),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := link.New(link.Config{
		Coordinator: f.addr, JoinToken: "join-secret", Name: name, Runner: runner, Ledger: ledger, StateDir: t.TempDir(), Labels: labels,
		Logger: hclog.New(&hclog.LoggerOptions{Name: name + "-link", Level: hclog.Warn, Output: os.Stderr}),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		dockertest.Cleanup(t, map[string]string{agent.LabelAgent: agentID})
	})
	return l, cancel
}

// waitEnded waits for the build to end and returns it.
func (f *fleetFixture) waitEnded(t *testing.T, id string) coordinator.Build {
	t.Helper()
	var b coordinator.Build
	wait.For(t, fmt.Sprintf("build %s to end", id), func() bool {
		var err error
		if b, err = f.store.GetBuild(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		return b.State == coordinator.Ended
	})
	return b
}

func TestBuildRunsOnAnAgentAndEverythingIsStored(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	f := newFleet(t, 10*time.Second)
	f.startAgent(t, "a1", agent.Resources{MilliCPUs: 2000, Memory: 8 << 30})
	repo, commit := gittest.Repo(t, map[string]string{
		".monkeyci/build.yaml": "- {id: hello, image: monkeyci/busybox:latest, script: ['echo hello from $MONKEYCI_JOB_ID', 'cat file.txt']}\n",
		"file.txt":             "committed content\n",
	})
	b, err := f.c.Trigger(context.Background(), coordinator.Build{Source: coordinator.Source{URL: repo, Commit: commit}})
	if err != nil {
		t.Fatal(err)
	}
	ended := f.waitEnded(t, b.ID)
	if ended.Result != events.Success || ended.Attempt != 1 {
		t.Fatalf("build ended %+v, want success at attempt 1", ended)
	}
	evs, err := f.store.Events(context.Background(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Errorf("event %d has seq %d", i, e.Seq)
		}
		types = append(types, string(e.Event.Type))
	}
	for _, want := range []string{"build/start", "job/start", "command/end", "job/end", "build/end"} {
		if !strings.Contains(strings.Join(types, " "), want) {
			t.Errorf("stored events %v lack %s", types, want)
		}
	}
	out := make([]byte, 4096)
	n, err := f.logs.ReadAt(logstore.Key{Build: b.ID, Attempt: 1, Job: "hello", Stream: "out"}, 0, out)
	if err != nil && n == 0 {
		t.Fatal(err)
	}
	if got := string(out[:n]); got != "hello from hello\ncommitted content\n" {
		t.Errorf("stored log %q", got)
	}
}

// A running build canceled through the coordinator ends canceled, and its
// agent removes its containers (`make bench` times it: BenchmarkCancel).
func TestCancelEndsARunningBuildAndRemovesItsContainers(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	f := newFleet(t, 10*time.Second)
	f.startAgent(t, "a1", agent.Resources{MilliCPUs: 2000, Memory: 8 << 30})
	repo, commit := gittest.Repo(t, map[string]string{
		".monkeyci/build.yaml": "- {id: sleeper, image: monkeyci/busybox:latest, script: ['echo sleeping', 'sleep 600']}\n",
	})
	ctx := context.Background()
	b, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: repo, Commit: commit}})
	if err != nil {
		t.Fatal(err)
	}
	key := logstore.Key{Build: b.ID, Attempt: 1, Job: "sleeper", Stream: "out"}
	wait.For(t, "the job to print", func() bool {
		size, _ := f.logs.Size(key)
		return size > 0
	})
	engine := dockertest.Engine(t)
	labels := map[string]string{agent.LabelBuild: b.ID + "-1"}
	if ids, err := engine.ListContainers(ctx, labels); err != nil || len(ids) == 0 {
		t.Fatalf("no container of the running build: %v %v", ids, err)
	}
	if err := f.c.Cancel(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if got := f.waitEnded(t, b.ID); got.Result != events.Canceled {
		t.Errorf("the build ended %s, want canceled", got.Result)
	}
	if ids, err := engine.ListContainers(ctx, labels); err != nil || len(ids) != 0 {
		t.Errorf("containers left after the cancel: %v %v", ids, err)
	}
}
