package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator/pool/dockerpool"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/loopback"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A pool of agents as containers on the local engine, sized by a real
// coordinator process that is killed with SIGKILL mid-way and started
// again: at most --pool-max agents, every build succeeds, the pool goes
// back to no container once idle, and nothing is left behind.
func TestPoolOfDockerAgentsScalesUpAndBackToZeroAcrossACoordinatorKill(t *testing.T) {
	engine := dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	name := "e2e" + hex.EncodeToString(suffix)
	poolLabel := map[string]string{dockerpool.LabelPool: name}
	// A short work dir: job API sockets live under it, and a unix socket's
	// path is at most 108 bytes.
	work, err := os.MkdirTemp("", "mcp")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{} // instances, for the cleanup of their builds
	var seenMu sync.Mutex
	t.Cleanup(func() {
		seenMu.Lock()
		defer seenMu.Unlock()
		for id := range seen {
			dockertest.Cleanup(t, map[string]string{agent.LabelAgent: id})
		}
		dockertest.Cleanup(t, poolLabel)
		_ = os.RemoveAll(work)
	})
	config := filepath.Join(t.TempDir(), "coordinator.yaml")
	if err := os.WriteFile(config, fmt.Appendf(nil, "pool:\n  docker:\n    name: %s\n    work-dir: %s\n", name, work), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--pool", "docker", "--pool-min", "0", "--pool-max", "3", "--pool-idle", "0", "--pool-idle-timeout", "3s", "--pool-join-timeout", "60s",
		"--pool-step", "1s", "--pool-agent-cpus", "2", "--pool-agent-memory", "8g", "--config", config}
	dataDir, addr := t.TempDir(), loopback.FreeAddr(t)
	c := startCoordinatorAt(t, dataDir, 10*time.Second, addr, args...)
	api := c.adminClient(t)

	// Watch the pool's containers throughout: never more than 3.
	ctx, stopWatch := context.WithCancel(context.Background())
	most := make(chan int, 1)
	go func() {
		peak := 0
		defer func() { most <- peak }()
		for ctx.Err() == nil {
			if ids, err := engine.ListContainers(ctx, poolLabel); err == nil {
				peak = max(peak, len(ids))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	defer stopWatch()

	// Served over HTTP, as a forge serves it: the pool's agents run in a
	// scratch image, without the git a local path's fetch needs.
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": "id: work\nimage: monkeyci/busybox:latest\nscript: ['echo working', 'sleep 3']\n"})
	repo = gittest.ServeHTTP(t, repo)
	var ids []string
	for range 6 {
		b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.GetId())
	}
	waitBuild(t, api, ids[0], 3*time.Minute, "running on a pool agent", func(b *fleet.BuildInfo) bool { return b.GetState() != "queued" })
	note := func(api fleet.AdminClient) {
		if st, err := api.PoolStatus(context.Background(), &fleet.PoolStatusRequest{}); err == nil {
			seenMu.Lock()
			for _, in := range st.GetInstances() {
				seen[in.GetId()] = true
			}
			seenMu.Unlock()
		}
	}
	note(api)

	// The coordinator dies with its pool up; a new one takes over the pool.
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	c = startCoordinatorAt(t, dataDir, 10*time.Second, addr, args...)
	api = c.adminClient(t)
	for _, id := range ids {
		b := waitBuild(t, api, id, 3*time.Minute, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
		if b.GetResult() != "success" {
			t.Errorf("build %s ended %s: %s", id, b.GetResult(), b.GetMessage())
		}
		note(api)
	}

	// Idle past the timeout: drained and destroyed, down to none.
	var left []string
	if !wait.Poll(wait.Bound, func() bool {
		var err error
		if left, err = engine.ListContainers(context.Background(), poolLabel); err != nil {
			t.Fatal(err)
		}
		return len(left) == 0
	}) {
		st, _ := api.PoolStatus(context.Background(), &fleet.PoolStatusRequest{})
		t.Fatalf("%d pool containers left %s after the builds ended; pool: %v\ncoordinator:\n%s", len(left), wait.Bound, st, c.out)
	}
	stopWatch()
	if peak := <-most; peak > 3 || peak == 0 {
		t.Errorf("at most %d pool containers at once, want 1 to 3", peak)
	}
	// No orphan: neither an agent nor a build container of one.
	seenMu.Lock()
	for id := range seen {
		if left, err := engine.ListContainers(context.Background(), map[string]string{agent.LabelAgent: id}); err != nil || len(left) > 0 {
			t.Errorf("agent %s left %d containers (%v)", id, len(left), err)
		}
	}
	seenMu.Unlock()
	st, err := api.PoolStatus(context.Background(), &fleet.PoolStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, d := range st.GetDecisions() {
		kinds[d.GetType()]++
	}
	if kinds["pool/scale-in"] == 0 || kinds["pool/destroy"] == 0 {
		t.Errorf("decisions after the restart %v: want scale-ins and destroys", kinds)
	}
}

// Bad pool settings: one line naming the flag or the file's line, exit 2,
// and no coordinator started.
func TestPoolBadInputExitsTwoNamingTheFlag(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.yaml")
	if err := os.WriteFile(typo, []byte("pool:\n  docker:\n    work_dir: /tmp/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--pool", "kubernetes"}, `--pool "kubernetes": say docker, oci or static`},
		{[]string{"--pool", "docker", "--pool-min", "4", "--pool-max", "2"}, "--pool-min (4) is above --pool-max (2)"},
		{[]string{"--pool", "docker", "--pool-agent-memory", "lots"}, "--pool-agent-memory"},
		{[]string{"--pool", "static"}, "pool.static.instances"},
		{[]string{"--pool", "docker", "--config", typo}, "typo.yaml: yaml: unmarshal errors:\n  line 3: field work_dir not found"},
	} {
		code, stdout, stderr := monkeyci(t, append([]string{"coordinator", "--data-dir", t.TempDir(), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", tc.args, code, stderr, tc.want)
		}
		assertNoStackTrace(t, stderr)
	}
}

func TestPoolSimulatePrintsTheDay(t *testing.T) {
	code, stdout, stderr := monkeyci(t, "pool", "simulate", "--trace", filepath.Join("..", "..", "coordinator", "pool", "sim", "testdata", "day.csv"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"instance-hours", "queue wait", "p95", "scale events"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("no %q in:\n%s", want, stdout)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("arrival,jobs,durations\n10,2,30\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = monkeyci(t, "pool", "simulate", "--trace", bad)
	if code != 2 || !strings.Contains(stderr, "bad.csv:2:") {
		t.Errorf("a bad trace: exit %d, %q; want 2 naming bad.csv:2", code, stderr)
	}
}
