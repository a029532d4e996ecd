package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator/tlsca"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Chaos tests: a real coordinator process and real agent processes,
// killed, stopped and drained with real signals.

type coordinatorProcess struct {
	cmd                   *exec.Cmd
	addr, ca, join, admin string
	out                   *bytes.Buffer
}

var (
	grpcLine  = regexp.MustCompile(`gRPC on (\S+),`)
	caLine    = regexp.MustCompile(`CA for agents and clients: (\S+)`)
	joinLine  = regexp.MustCompile(`join token:\s+(\S+)`)
	adminLine = regexp.MustCompile(`admin token:\s+(\S+)`)
)

func startCoordinator(t *testing.T, dataDir string, lease time.Duration) *coordinatorProcess {
	t.Helper()
	p := &coordinatorProcess{out: &bytes.Buffer{}}
	p.cmd = exec.Command(testbinary.Path(t), "coordinator", "--data-dir", dataDir, "--grpc-listen", "127.0.0.1:0",
		"--http-listen", "127.0.0.1:0", "--lease", lease.String(), "--log-level", "warn")
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
	for p.admin == "" && lines.Scan() {
		l := lines.Text()
		for re, dst := range map[*regexp.Regexp]*string{grpcLine: &p.addr, caLine: &p.ca, joinLine: &p.join, adminLine: &p.admin} {
			if m := re.FindStringSubmatch(l); m != nil {
				*dst = m[1]
			}
		}
	}
	if p.admin == "" {
		t.Fatalf("the coordinator printed no tokens; stderr:\n%s", p.out)
	}
	go io.Copy(io.Discard, stdout)
	return p
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
	out  *bytes.Buffer
	done chan error
}

func startAgentProcess(t *testing.T, c *coordinatorProcess, name string) *agentProcess {
	t.Helper()
	p := &agentProcess{out: &bytes.Buffer{}, done: make(chan error, 1)}
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
	deadline := time.Now().Add(limit)
	for {
		b, err := api.GetBuild(context.Background(), &fleet.GetBuildRequest{Id: id})
		if err == nil && ok(b.GetBuild()) {
			return b.GetBuild()
		}
		if time.Now().After(deadline) {
			t.Fatalf("build %s: not %s within %s (last: %+v, %v)", id, what, limit, b.GetBuild(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestChaosAgentKilledMidBuildFinishesElsewhereAsAttemptTwo(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	const lease = 5 * time.Second
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
	killed := time.Now()
	ended := waitBuild(t, api, b.GetId(), lease+15*time.Second+5*time.Second, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	if ended.GetResult() != "success" || ended.GetAttempt() != 2 {
		t.Fatalf("build ended %s at attempt %d (%s), want success at attempt 2\nagent output:\n%s", ended.GetResult(), ended.GetAttempt(), ended.GetMessage(), first.out)
	}
	if took := time.Since(killed); took > lease+15*time.Second {
		t.Errorf("the build ended %s after the kill, more than the lease plus 15 s", took)
	}
}

func TestChaosSIGTERMDrainsTheAgent(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	c := startCoordinator(t, t.TempDir(), 10*time.Second)
	api := c.adminClient(t)
	a := startAgentProcess(t, c, "chaos-drain-a1")
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": "id: slow\nimage: monkeyci/busybox:latest\nscript: ['sleep 3', 'echo finished']\n"})
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	waitBuild(t, api, b.GetId(), time.Minute, "running", func(b *fleet.BuildInfo) bool { return b.GetState() == "running" })
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Once the coordinator knows the agent drains, a new build must wait.
	deadline := time.Now().Add(time.Minute)
	for !agentDraining(t, api, "chaos-drain-a1") {
		if time.Now().After(deadline) {
			t.Fatal("the coordinator never saw the agent draining")
		}
		time.Sleep(50 * time.Millisecond)
	}
	later, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
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
