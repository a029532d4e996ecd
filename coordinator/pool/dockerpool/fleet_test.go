package dockerpool_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent/docker"
	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/coordinator/pool/dockerpool"
	"github.com/monkeyci/monkeyci/coordinator/server"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Two agents in containers join a real coordinator under their instance
// ids, run a real build (its job API socket and files reach the build's
// containers through the same-path mounts), and are destroyed without a
// trace.
func TestFleet(t *testing.T) {
	rt := dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := startCoordinator(ctx, t, false)
	p, workDir := newPool(ctx, t, rt, srv)

	insts, err := p.Create(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, inst := range insts {
		// What a killed agent would leave is removed too, whatever happens.
		dockertest.Cleanup(t, map[string]string{engine.LabelAgent: inst.ID})
		if inst.Phase != pool.Running || time.Since(inst.Created) > time.Minute {
			t.Errorf("created %+v", inst)
		}
		if st, err := os.Stat(filepath.Join(workDir, inst.ID)); err != nil || !st.IsDir() {
			t.Errorf("no host folder for %s: %v", inst.ID, err)
		}
	}
	ids := []string{insts[0].ID, insts[1].ID}
	agents := waitForAgents(ctx, t, srv, rt, ids)

	// The source is served over HTTP: the agent image has no git for a
	// local path's file transport. Its go-git checkout is a repository
	// whose objects, the mirror's, the job finds where .git says.
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": "- {id: hi, image: " + dockertest.Busybox +
		", script: ['echo hi', 'test -f .git/HEAD', 'test -d \"$(cat .git/objects/info/alternates)\"/pack']}\n"})
	b, err := srv.Coordinator.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: gittest.ServeHTTP(t, repo), Commit: commit}})
	if err != nil {
		t.Fatal(err)
	}
	b = waitForBuild(ctx, t, srv, b.ID)
	if b.Result != events.Success {
		t.Fatalf("build ended %s: %s", b.Result, b.Message)
	}
	if !slices.Contains(ids, agents[b.Agent]) {
		t.Errorf("build ran on agent %s, not one of the pool's", b.Agent)
	}
	checkJobSucceeded(ctx, t, srv, b.ID, "hi")
	// Without git, the agent keeps the repository's mirror with go-git.
	if found, _ := filepath.Glob(filepath.Join(workDir, agents[b.Agent], "state", "agent", "mirrors", "*", "mirror.git", "objects")); len(found) != 1 {
		t.Errorf("the agent's mirrors: %v, want the repository's", found)
	}

	list, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := phases(list); len(got) != 2 || got[ids[0]] != pool.Running || got[ids[1]] != pool.Running {
		t.Errorf("List = %+v, want both running", list)
	}

	// SIGTERM drains an agent and it exits 0; List shows the exited
	// container as Stopping until Destroy removes it.
	if err := rt.Stop(ctx, ids[0], 30); err != nil {
		t.Fatal(err)
	}
	if exit, err := rt.Wait(ctx, ids[0]); err != nil || exit.Code != 0 {
		t.Errorf("drained agent exited %+v, %v; want 0", exit, err)
	}
	if list, err = p.List(ctx); err != nil {
		t.Fatal(err)
	}
	if got := phases(list); len(got) != 2 || got[ids[0]] != pool.Stopping || got[ids[1]] != pool.Running {
		t.Errorf("List = %+v, want %s stopping and %s running", list, ids[0], ids[1])
	}

	for _, id := range ids {
		if err := p.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	unknown := ids[0][:len(ids[0])-8] + "00000000"
	for _, id := range []string{ids[0], unknown, "monkeyci-pool-nothere-0a1b2c3d", "not-a-pool-container"} {
		if err := p.Destroy(ctx, id); err != nil {
			t.Errorf("Destroy(%s) again or unknown: %v", id, err)
		}
	}
	if list, err = p.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List after Destroy = %+v, %v", list, err)
	}
	for _, id := range ids {
		if left, err := rt.ListContainers(ctx, map[string]string{engine.LabelAgent: id}); err != nil || len(left) != 0 {
			t.Errorf("the agent %s left containers: %v %v", id, left, err)
		}
		if _, err := os.Stat(filepath.Join(workDir, id)); !os.IsNotExist(err) {
			t.Errorf("host folder of %s: %v, want it gone", id, err)
		}
	}
}

// Over TLS, the agent trusts the coordinator's CA, mounted in.
func TestFleetTLS(t *testing.T) {
	rt := dockertest.Engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := startCoordinator(ctx, t, true)
	if srv.CAFile == "" {
		t.Fatal("the coordinator serves no TLS")
	}
	p, _ := newPool(ctx, t, rt, srv)
	insts, err := p.Create(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	dockertest.Cleanup(t, map[string]string{engine.LabelAgent: insts[0].ID})
	waitForAgents(ctx, t, srv, rt, []string{insts[0].ID})
	if err := p.Destroy(ctx, insts[0].ID); err != nil {
		t.Fatal(err)
	}
	if list, err := p.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List after Destroy = %+v, %v", list, err)
	}
}

func startCoordinator(ctx context.Context, t *testing.T, tls bool) *server.Server {
	t.Helper()
	srv, err := server.Start(ctx, server.Config{DataDir: t.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", TLS: tls})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// newPool makes a provider for a pool of this test's own, whose
// containers are removed when the test ends, and returns it with its
// work dir.
func newPool(ctx context.Context, t *testing.T, rt *docker.Engine, srv *server.Server) (*dockerpool.Provider, string) {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "test" + hex.EncodeToString(b[:])
	// Not t.TempDir(): its long path would leave the agents' job API
	// sockets no room (see socketPathLen).
	workDir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(workDir) })
	dockertest.Cleanup(t, map[string]string{dockerpool.LabelPool: name})
	logPoolOnFailure(t, rt, name)
	p, err := dockerpool.New(ctx, dockerpool.Config{
		Engine: rt, Binary: testbinary.Path(t), Pool: name,
		Coordinator: srv.GRPCAddr, JoinToken: srv.JoinToken, TLS: srv.CAFile != "", CAFile: srv.CAFile,
		CPUs: 2, Memory: "4g", Pause: true, WorkDir: workDir, StopGrace: 10 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: testWriter{t}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, workDir
}

// waitForAgents waits until an agent named for each instance id is
// connected and ready, and returns the names by agent id.
func waitForAgents(ctx context.Context, t *testing.T, srv *server.Server, rt *docker.Engine, ids []string) map[string]string {
	t.Helper()
	var names map[string]string
	var list *fleet.ListAgentsResponse
	ready := 0
	if !wait.Poll(wait.Bound, func() bool {
		var err error
		if list, err = srv.Coordinator.AdminServer().ListAgents(ctx, &fleet.ListAgentsRequest{}); err != nil {
			t.Fatal(err)
		}
		names, ready = map[string]string{}, 0
		for _, a := range list.GetAgents() {
			names[a.GetId()] = a.GetName()
			if slices.Contains(ids, a.GetName()) && a.GetState() == "ready" {
				ready++
			}
		}
		if ready == len(ids) {
			return true
		}
		for _, id := range ids {
			// An agent that exited will never join: say so now.
			if st, err := rt.State(ctx, id); err != nil || st != "running" {
				t.Fatalf("agent container %s is %q (%v) while waiting for it to join", id, st, err)
			}
		}
		return false
	}) {
		t.Fatalf("%d of the agents %v are ready: %v", ready, ids, list.GetAgents())
	}
	return names
}

func waitForBuild(ctx context.Context, t *testing.T, srv *server.Server, id string) coordinator.Build {
	t.Helper()
	var b coordinator.Build
	if !wait.Poll(wait.Bound, func() bool {
		var err error
		if b, err = srv.Coordinator.Build(ctx, id); err != nil {
			t.Fatal(err)
		}
		return b.State == coordinator.Ended
	}) {
		agents, _ := srv.Coordinator.AdminServer().ListAgents(ctx, &fleet.ListAgentsRequest{})
		t.Fatalf("build %s did not end: %+v\nagents: %v", id, b, agents.GetAgents())
	}
	return b
}

// checkJobSucceeded checks that the build's events tell of job ending
// in success: the script reached the agent's job API, and the job ran.
func checkJobSucceeded(ctx context.Context, t *testing.T, srv *server.Server, build, job string) {
	t.Helper()
	d, err := srv.Coordinator.AdminServer().GetBuild(ctx, &fleet.GetBuildRequest{Id: build})
	if err != nil {
		t.Fatal(err)
	}
	for _, se := range d.GetEvents() {
		var e events.Event
		if err := json.Unmarshal(se.GetEvent(), &e); err != nil {
			t.Fatal(err)
		}
		if e.Type == events.JobEnd && e.Job == job {
			if e.Status != events.Success {
				t.Errorf("job %s ended %s: %s", job, e.Status, e.Message)
			}
			return
		}
	}
	t.Errorf("no end of job %s among the build's %d events", job, len(d.GetEvents()))
}

func phases(list []pool.Instance) map[string]pool.Phase {
	m := map[string]pool.Phase{}
	for _, inst := range list {
		m[inst.ID] = inst.Phase
	}
	return m
}

// logPoolOnFailure prints the pool's agents' output when the test fails
// (registered before the containers' removal, so it runs first).
func logPoolOnFailure(t *testing.T, rt *docker.Engine, name string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ids, _ := rt.ListContainers(ctx, map[string]string{dockerpool.LabelPool: name})
		for _, id := range ids {
			var out bytes.Buffer
			lctx, lcancel := context.WithTimeout(ctx, 2*time.Second) // Logs follows a running container
			_ = rt.Logs(lctx, id, &out, &out)
			lcancel()
			t.Logf("agent container %.12s:\n%s", id, out.String())
		}
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}
