package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/docker"
	"github.com/monkeyci/monkeyci/coordinator/tlsca"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/loopback"
	"github.com/monkeyci/monkeyci/internal/pgtest"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Chaos tests: a real coordinator process and real agent processes,
// killed, stopped and drained with real signals.

type coordinatorProcess struct {
	cmd                         *exec.Cmd
	addr, http, ca, join, admin string
	out                         *syncbuf.Buffer
}

var (
	grpcLine  = regexp.MustCompile(`gRPC on (\S+),`)
	httpLine  = regexp.MustCompile(`HTTPS? on (\S+)$`)
	caLine    = regexp.MustCompile(`CA for agents and clients: (\S+)`)
	joinLine  = regexp.MustCompile(`join token:\s+(\S+)`)
	adminLine = regexp.MustCompile(`admin token:\s+(\S+)`)
)

func startCoordinator(t *testing.T, dataDir string, lease time.Duration) *coordinatorProcess {
	return startCoordinatorAt(t, dataDir, lease, "127.0.0.1:0")
}

// startCoordinatorAt starts a coordinator on a given gRPC address, so a
// restarted one is found where its agents look.
// Extra arguments go to the command as they are.
func startCoordinatorAt(t *testing.T, dataDir string, lease time.Duration, addr string, extra ...string) *coordinatorProcess {
	t.Helper()
	p := &coordinatorProcess{out: &syncbuf.Buffer{}}
	args := append([]string{"coordinator", "--data-dir", dataDir, "--grpc-listen", addr,
		"--http-listen", "127.0.0.1:0", "--lease", lease.String(), "--log-level", "warn"}, extra...)
	p.cmd = exec.Command(testbinary.Path(t), args...)
	p.cmd.Stderr = p.out
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() && !strings.Contains(lines.Text(), "export MONKEYCI_SERVER=") {
		l := lines.Text()
		for re, dst := range map[*regexp.Regexp]*string{grpcLine: &p.addr, httpLine: &p.http, caLine: &p.ca, joinLine: &p.join, adminLine: &p.admin} {
			if m := re.FindStringSubmatch(l); m != nil {
				*dst = m[1]
			}
		}
	}
	go io.Copy(io.Discard, stdout)
	if p.join == "" && p.admin == "" {
		// A restart prints no token: they are the data dir's.
		p.join, p.admin = keptTokens(t, dataDir)
	}
	if p.addr == "" || p.admin == "" {
		t.Fatalf("the coordinator printed no address or tokens; stderr:\n%s", p.out)
	}
	return p
}

// keptTokens reads the tokens a coordinator made in its data dir.
func keptTokens(t *testing.T, dataDir string) (join, admin string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dataDir, "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	var kept struct{ Join, Admin string }
	if err := json.Unmarshal(data, &kept); err != nil {
		t.Fatal(err)
	}
	return kept.Join, kept.Admin
}

func (p *coordinatorProcess) adminClient(t *testing.T) fleet.AdminClient {
	t.Helper()
	tc, err := tlsca.ClientConfig(p.ca, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithPerRPCCredentials(tokenCreds(p.admin)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return fleet.NewAdminClient(conn)
}

type agentProcess struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan error
}

func startAgentProcess(t *testing.T, c *coordinatorProcess, name string) *agentProcess {
	t.Helper()
	p := &agentProcess{out: &syncbuf.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(testbinary.Path(t), "agent", "--coordinator", c.addr, "--ca", c.ca, "--join-token", c.join,
		"--name", name, "--cpus", "2", "--memory", "8g", "--state-dir", t.TempDir(), "--log-level", "warn")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		dockertest.Cleanup(t, map[string]string{agent.LabelAgent: name})
	})
	return p
}

// waitBuild polls the build until ok says so, for at most limit.
func waitBuild(t *testing.T, api fleet.AdminClient, id string, limit time.Duration, what string, ok func(*fleet.BuildInfo) bool) *fleet.BuildInfo {
	t.Helper()
	var b *fleet.BuildDetail
	var err error
	if !wait.Poll(limit, func() bool {
		b, err = api.GetBuild(context.Background(), &fleet.GetBuildRequest{Id: id})
		return err == nil && ok(b.GetBuild())
	}) {
		t.Fatalf("build %s: not %s within %s (last: %+v, %v)", id, what, limit, b.GetBuild(), err)
	}
	return b.GetBuild()
}

func TestChaosAgentKilledMidBuildFinishesElsewhereAsAttemptTwo(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	// The lease is long: the killed agent's closed stream and the grace
	// (5 s) send the build on.
	const lease = 30 * time.Second
	c := startCoordinator(t, t.TempDir(), lease)
	api := c.adminClient(t)
	first := startAgentProcess(t, c, "chaos-kill-a1")
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": "id: slow\nimage: monkeyci/busybox:latest\nscript: ['sleep 3', 'echo done']\n"})
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	waitBuild(t, api, b.GetId(), time.Minute, "running on the first agent", func(b *fleet.BuildInfo) bool { return b.GetState() == "running" })
	startAgentProcess(t, c, "chaos-kill-a2")
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ended := waitBuild(t, api, b.GetId(), lease+time.Minute, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	if ended.GetResult() != "success" || ended.GetAttempt() != 2 || ended.GetAttemptReasons()[2] != "agent lost" {
		t.Fatalf("build ended %s at attempt %d (%s) for %q, want success at attempt 2 for \"agent lost\"\nagent output:\n%s",
			ended.GetResult(), ended.GetAttempt(), ended.GetMessage(), ended.GetAttemptReasons()[2], first.out)
	}
	// "agent lost", not "lease expired": the grace sent it on. How soon is
	// the bench's to measure (BenchmarkRecoveryAfterKill), not a test's.
}

func TestChaosSIGTERMDrainsTheAgent(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	c := startCoordinator(t, t.TempDir(), 10*time.Second)
	api := c.adminClient(t)
	a := startAgentProcess(t, c, "chaos-drain-a1")
	// The build waits for a manual unblock: it is still running, and the
	// agent still there, whenever the test looks, until the test lets it go.
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": "id: gate\nimage: monkeyci/busybox:latest\nscript: ['echo finished']\nblocked: true\n"})
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	// Running is not enough: the agent may not have taken the assignment
	// yet, and one that crosses the drain is handed back (the agent, with
	// nothing left, exits before it is seen draining). The gate's
	// job/blocked comes from the agent that holds the build.
	if !wait.Poll(wait.Bound, func() bool { return gateBlocked(t, api, b.GetId()) }) {
		d, _ := api.GetBuild(context.Background(), &fleet.GetBuildRequest{Id: b.GetId()})
		t.Fatalf("never, within %s: the agent to tell that the gate waits; the build: %+v\nevents: %v\nagent output:\n%s", wait.Bound, d.GetBuild(), d.GetEvents(), a.out)
	}
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Once the coordinator knows the agent drains, a new build must wait.
	wait.For(t, "the coordinator to see the agent draining", func() bool { return agentDraining(t, api, "chaos-drain-a1") })
	later, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.UnblockJob(context.Background(), &fleet.UnblockJobRequest{Build: b.GetId(), Job: "gate"}); err != nil {
		t.Fatalf("unblocking the gate: %v", err)
	}
	select {
	case err := <-a.done:
		a.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("the agent exited with %v after SIGTERM, want 0\n%s", err, a.out)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the drained agent did not exit within 2 minutes")
	}
	ended := waitBuild(t, api, b.GetId(), 10*time.Second, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	if ended.GetResult() != "success" {
		t.Errorf("the running build ended %s (%s), want success", ended.GetResult(), ended.GetMessage())
	}
	if got := waitBuild(t, api, later.GetId(), 0, "queued", func(*fleet.BuildInfo) bool { return true }); got.GetState() != "queued" {
		t.Errorf("the build triggered after SIGTERM is %s, want still queued", got.GetState())
	}
}

// gateBlocked says whether the build's stored events hold job/blocked for
// its job "gate".
func gateBlocked(t *testing.T, api fleet.AdminClient, id string) bool {
	t.Helper()
	d, err := api.GetBuild(context.Background(), &fleet.GetBuildRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	for _, se := range d.GetEvents() {
		var e events.Event
		if json.Unmarshal(se.GetEvent(), &e) == nil && e.Type == events.JobBlocked && e.Job == "gate" {
			return true
		}
	}
	return false
}

func agentDraining(t *testing.T, api fleet.AdminClient, name string) bool {
	t.Helper()
	resp, err := api.ListAgents(context.Background(), &fleet.ListAgentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range resp.GetAgents() {
		if a.GetName() == name && a.GetState() == "draining" {
			return true
		}
	}
	return false
}

// freeAddr finds a loopback port nobody listens on.
// On either database: SQLite in the data dir, or PostgreSQL.
func TestChaosCoordinatorRestartMidBuildLosesAndRepeatsNothing(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	for _, db := range []struct {
		name  string
		flags func(t *testing.T) []string
	}{
		{"SQLite", func(*testing.T) []string { return nil }},
		{"PostgreSQL", func(t *testing.T) []string { return []string{"--database", pgtest.Start(t).DSN} }},
	} {
		t.Run(db.name, func(t *testing.T) { coordinatorRestartMidBuild(t, db.flags(t)) })
	}
}

func coordinatorRestartMidBuild(t *testing.T, flags []string) {
	dataDir, addr := t.TempDir(), loopback.FreeAddr(t)
	c := startCoordinatorAt(t, dataDir, 20*time.Second, addr, flags...)
	api := c.adminClient(t)
	startAgentProcess(t, c, "chaos-restart-a1")
	repo, commit := gittest.Repo(t, talking(60))
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	waitBuild(t, api, b.GetId(), time.Minute, "running", func(b *fleet.BuildInfo) bool { return b.GetState() == "running" })
	waitLog(t, api, b.GetId(), "talk", "line 5\n")
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	c2 := startCoordinatorAt(t, dataDir, 20*time.Second, addr, flags...)
	api = c2.adminClient(t)
	ended := waitBuild(t, api, b.GetId(), 2*time.Minute, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	if ended.GetResult() != "success" || ended.GetAttempt() != 1 {
		t.Fatalf("build ended %s at attempt %d (%s), want success at attempt 1", ended.GetResult(), ended.GetAttempt(), ended.GetMessage())
	}
	checkWholeRun(t, api, b.GetId(), 60)
}

// talking is a build whose job "talk" prints "line 1" to "line N", one
// every 0.1 s.
func talking(lines int) map[string]string {
	return map[string]string{".monkeyci/build.yaml": "id: talk\nimage: monkeyci/busybox:latest\n" +
		fmt.Sprintf("script: ['seq 1 %d | while read i; do echo \"line $i\"; sleep 0.1; done']\n", lines)}
}

// checkWholeRun checks that a talking build's stored log is a clean run's,
// byte for byte, and that none of its events was stored twice.
func checkWholeRun(t *testing.T, api fleet.AdminClient, id string, lines int) {
	t.Helper()
	var want strings.Builder
	for i := 1; i <= lines; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if got := readLog(t, api, id, "talk"); got != want.String() {
		t.Errorf("stored log differs from a clean run's:\n got %q\nwant %q", got, want.String())
	}
	detail, err := api.GetBuild(context.Background(), &fleet.GetBuildRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i, e := range detail.GetEvents() {
		if e.GetSeq() != int64(i+1) {
			t.Errorf("event %d has seq %d: not stored once each, in order", i, e.GetSeq())
		}
		var ev events.Event
		if err := json.Unmarshal(e.GetEvent(), &ev); err != nil {
			t.Fatal(err)
		}
		seen[string(ev.Type)+" "+ev.Job+" "+ev.Command]++
	}
	for what, n := range seen {
		if n > 1 && !strings.HasPrefix(what, "script/") {
			t.Errorf("%s stored %d times", what, n)
		}
	}
}

func TestChaosStoppedAgentIsFencedOffAndCleansUp(t *testing.T) {
	dockertest.Engine(t)
	engine := dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	const lease = 3 * time.Second
	c := startCoordinator(t, t.TempDir(), lease)
	api := c.adminClient(t)
	stopped := startAgentProcess(t, c, "chaos-stop-a1")
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": "id: slow\nimage: monkeyci/busybox:latest\nscript: ['sleep 4', 'echo done']\n"})
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	waitBuild(t, api, b.GetId(), time.Minute, "running", func(b *fleet.BuildInfo) bool { return b.GetState() == "running" })
	waitContainers(t, engine, b.GetId()+"-1", func(n int) bool { return n > 0 }, "the first attempt's containers")
	if err := stopped.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	startAgentProcess(t, c, "chaos-stop-a2")
	again := waitBuild(t, api, b.GetId(), lease+time.Minute, "running as attempt 2", func(b *fleet.BuildInfo) bool { return b.GetAttempt() == 2 && b.GetState() == "running" })
	// A stopped process keeps its stream open: only the lease sees it.
	if why := again.GetAttemptReasons()[2]; why != "lease expired" {
		t.Errorf("attempt 2 exists because %q, want \"lease expired\"", why)
	}
	if err := stopped.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	ended := waitBuild(t, api, b.GetId(), 2*time.Minute, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	if ended.GetResult() != "success" || ended.GetAttempt() != 2 {
		t.Fatalf("build ended %s at attempt %d (%s), want the second agent's success", ended.GetResult(), ended.GetAttempt(), ended.GetMessage())
	}
	// The woken agent hears its attempt is stale and removes what it ran.
	if !wait.Poll(wait.Bound, func() bool {
		ids, err := engine.ListContainers(context.Background(), map[string]string{agent.LabelBuild: b.GetId() + "-1"})
		return err == nil && len(ids) == 0
	}) {
		left, _ := engine.ListContainers(context.Background(), map[string]string{agent.LabelBuild: b.GetId() + "-1"})
		var roles []string
		for _, id := range left {
			if info, err := engine.Inspect(context.Background(), id); err == nil {
				roles = append(roles, info.Config.Labels[agent.LabelRole]+" "+info.State.Status)
			}
		}
		t.Fatalf("the stale attempt's containers are left after %s: %v; the woken agent said:\n%s", wait.Bound, roles, stopped.out)
	}
	detail, err := api.GetBuild(context.Background(), &fleet.GetBuildRequest{Id: b.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range detail.GetEvents() {
		var ev events.Event
		_ = json.Unmarshal(e.GetEvent(), &ev)
		if ev.Type == events.BuildEnd && e.GetAttempt() != 2 {
			t.Errorf("a build/end of attempt %d was stored: late reports must be refused", e.GetAttempt())
		}
	}
}

// waitLog waits until the job's stored output contains want.
func waitLog(t *testing.T, api fleet.AdminClient, build, job, want string) {
	t.Helper()
	wait.For(t, fmt.Sprintf("the log of %s to show %q", job, want), func() bool { return strings.Contains(readLog(t, api, build, job), want) })
}

// readLog returns the job's stored output, without following.
func readLog(t *testing.T, api fleet.AdminClient, build, job string) string {
	t.Helper()
	stream, err := api.Logs(context.Background(), &fleet.LogsRequest{Build: build, Job: job})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for {
		ch, err := stream.Recv()
		if err != nil {
			return out.String()
		}
		if ch.GetStream() == "out" {
			out.Write(ch.GetData())
		}
	}
}

// waitContainers waits until the count of containers of a runner build id
// satisfies ok.
func waitContainers(t *testing.T, engine *docker.Engine, runnerBuild string, ok func(int) bool, what string) {
	t.Helper()
	n := 0
	if !wait.Poll(wait.Bound, func() bool {
		ids, err := engine.ListContainers(context.Background(), map[string]string{agent.LabelBuild: runnerBuild})
		if err != nil {
			t.Fatal(err)
		}
		n = len(ids)
		return ok(n)
	}) {
		t.Fatalf("%s: %d containers after %s", what, n, wait.Bound)
	}
}

// kill -9 of the only agent mid-build, restarted at once: its hello holds
// no build, so the build is queued again at once ("agent restarted", not
// after the lease of 30 s) and ends as attempt 2; and nothing the killed
// run made stays: its containers, its job API socket folder under the
// temp dir, its build files under the state dir.
func TestChaosAgentKilledAndRestartedLeavesNothingAndRunsTheBuildAgain(t *testing.T) {
	engine := dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	c := startCoordinator(t, t.TempDir(), 30*time.Second)
	api := c.adminClient(t)
	const name = "chaos-restart"
	t.Cleanup(func() { dockertest.Cleanup(t, map[string]string{agent.LabelAgent: name}) })
	state := t.TempDir()
	args := []string{"--join-token", c.join, "--state-dir", state, "--name", name}
	// The agent's temp dir is this test's alone (and short: sockets live there).
	tmp, err := os.MkdirTemp("", "mci")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	env := []string{"TMPDIR=" + tmp}
	killed := startAgentArgs(t, c, env, args...)
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": "id: slow\nimage: monkeyci/busybox:latest\nscript: ['sleep 5', 'echo done']\n"})
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	waitBuild(t, api, b.GetId(), time.Minute, "running", func(b *fleet.BuildInfo) bool { return b.GetState() == "running" })
	first := b.GetId() + "-1"
	waitContainers(t, engine, first, func(n int) bool { return n > 1 }, "the first attempt's script and job")
	sockets, _ := filepath.Glob(filepath.Join(tmp, "mci-*", "*"))
	files := filepath.Join(state, "agent", "builds", "builds", first)
	if _, err := os.Stat(files); len(sockets) != 1 || err != nil {
		t.Fatalf("the running attempt's socket folders %v and files (%v): not where this test looks", sockets, err)
	}

	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-killed.done
	killed.done <- nil
	restarted := startAgentArgs(t, c, env, args...)
	restarted.joined(t)
	for _, left := range append(sockets, files) {
		if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s stayed behind the killed agent after its restart (%v)", left, err)
		}
	}
	waitContainers(t, engine, first, func(n int) bool { return n == 0 }, "the killed attempt's containers removed")
	ended := waitBuild(t, api, b.GetId(), 2*time.Minute, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	if ended.GetResult() != "success" || ended.GetAttempt() != 2 || ended.GetAttemptReasons()[2] != "agent restarted" {
		t.Fatalf("build ended %s at attempt %d (%s) for %q, want success at attempt 2 for \"agent restarted\"\nagent output:\n%s",
			ended.GetResult(), ended.GetAttempt(), ended.GetMessage(), ended.GetAttemptReasons()[2], restarted.out)
	}
	// "agent restarted", not "lease expired": the lease was not waited for.
}
