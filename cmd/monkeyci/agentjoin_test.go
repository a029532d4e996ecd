package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// An agent's identity: two agents on one machine never share one, a
// refused credential or join token ends the agent with a line saying what
// to do, and a join says who joined where.

var joinedLine = regexp.MustCompile(`agent (\S+) \((\S+)\) joined the coordinator at \S+, offering 2 CPUs and 8GB of memory`)

// startAgentArgs starts `monkeyci agent` against c with args after the
// coordinator's, and env added to the test's environment.
func startAgentArgs(t *testing.T, c *coordinatorProcess, env []string, args ...string) *agentProcess {
	t.Helper()
	p := &agentProcess{out: &syncbuf.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(testbinary.Path(t), append([]string{"agent", "--coordinator", c.addr, "--ca", c.ca,
		"--cpus", "2", "--memory", "8g", "--log-level", "warn"}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// joined waits for the agent's join line and returns its id and name.
func (p *agentProcess) joined(t *testing.T) (string, string) {
	t.Helper()
	var m []string
	if !wait.Poll(wait.Bound, func() bool {
		if m = joinedLine.FindStringSubmatch(p.out.String()); m != nil {
			return true
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("the agent ended (%v) before it joined:\n%s", err, p.out)
		default:
		}
		return false
	}) {
		t.Fatalf("the agent printed no join line:\n%s", p.out)
	}
	return m[1], m[2]
}

// exited waits for the agent to end and returns its exit code.
func (p *agentProcess) exited(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(limit):
		t.Fatalf("the agent did not end within %s:\n%s", limit, p.out)
		return 0
	}
}

func TestTwoAgentsWithDefaultFlagsAreTwoAgents(t *testing.T) {
	dockertest.Engine(t)
	c := startCoordinator(t, t.TempDir(), 30*time.Second)
	// The default state dir is under the user's cache dir: the test's own.
	env := []string{"XDG_CACHE_HOME=" + t.TempDir()}
	host, _ := os.Hostname()
	t.Cleanup(func() {
		dockertest.Cleanup(t, map[string]string{agent.LabelAgent: host})
		dockertest.Cleanup(t, map[string]string{agent.LabelAgent: host + "-2"})
	})
	first := startAgentArgs(t, c, env, "--join-token", c.join)
	id1, name1 := first.joined(t)
	second := startAgentArgs(t, c, env, "--join-token", c.join)
	id2, name2 := second.joined(t)
	if id1 == id2 {
		t.Fatalf("two agents side by side joined as one agent %s", id1)
	}
	if name1 != host || name2 != host+"-2" {
		t.Errorf("agents named %q and %q, want %q and %q", name1, name2, host, host+"-2")
	}
	api := c.adminClient(t)
	var seen map[string]string
	if !wait.Poll(wait.Bound, func() bool {
		r, err := api.ListAgents(context.Background(), &fleet.ListAgentsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		seen = map[string]string{}
		for _, a := range r.GetAgents() {
			if a.GetState() != "lost" {
				seen[a.GetId()] = a.GetName()
			}
		}
		return len(seen) == 2 && seen[id1] == host && seen[id2] == host+"-2"
	}) {
		t.Fatalf("the coordinator lists %v, want %s and %s connected", seen, id1, id2)
	}

	// A state dir given twice is refused, with a line saying so.
	dir := t.TempDir()
	owner := startAgentArgs(t, c, nil, "--join-token", c.join, "--state-dir", dir, "--name", "owner")
	owner.joined(t)
	t.Cleanup(func() { dockertest.Cleanup(t, map[string]string{agent.LabelAgent: "owner"}) })
	intruder := startAgentArgs(t, c, nil, "--join-token", c.join, "--state-dir", dir, "--name", "intruder")
	if code := intruder.exited(t, time.Minute); code != 2 {
		t.Errorf("a second agent on a state dir in use exited %d, want 2", code)
	}
	if out := intruder.out.String(); !strings.Contains(out, "another agent runs with it; give each agent its own") || strings.Count(strings.TrimSpace(out), "\n") > 0 {
		t.Errorf("a second agent on a state dir in use says:\n%s", out)
	}
}

func TestAgentJoinRefusalsEndTheAgentSayingWhatToDo(t *testing.T) {
	dockertest.Engine(t)
	c := startCoordinator(t, t.TempDir(), 30*time.Second)
	t.Cleanup(func() { dockertest.Cleanup(t, map[string]string{agent.LabelAgent: "forgotten"}) })

	wrong := startAgentArgs(t, c, nil, "--join-token", "not-the-token", "--state-dir", t.TempDir(), "--name", "wrong")
	if code := wrong.exited(t, time.Minute); code != 2 {
		t.Errorf("an agent with a wrong join token exited %d, want 2", code)
	}
	if out := wrong.out.String(); !strings.Contains(out, "refused the join token") || !strings.Contains(out, "--join-token") {
		t.Errorf("an agent with a wrong join token says:\n%s", out)
	}

	// A saved credential the coordinator does not know (its database was
	// lost, or the agent removed), and no join token: it cannot go on.
	dir := t.TempDir()
	identity := filepath.Join(dir, "agent", "identity.json")
	forget := func() {
		t.Helper()
		data, _ := json.Marshal(map[string]string{"id": "0123456789abcdef0123", "credential": "forgotten-credential"})
		if err := os.MkdirAll(filepath.Dir(identity), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(identity, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	forget()
	stranded := startAgentArgs(t, c, []string{"MONKEYCI_JOIN_TOKEN="}, "--state-dir", dir, "--name", "forgotten")
	if code := stranded.exited(t, time.Minute); code != 2 {
		t.Errorf("an agent with an unknown credential and no join token exited %d, want 2", code)
	}
	if out := stranded.out.String(); !strings.Contains(out, "no longer knows agent 0123456789abcdef0123") || !strings.Contains(out, "give it a join token") {
		t.Errorf("an agent with an unknown credential says:\n%s", out)
	}

	// With a join token it joins again, as a new agent, and keeps that.
	rejoined := startAgentArgs(t, c, nil, "--join-token", c.join, "--state-dir", dir, "--name", "forgotten")
	id, _ := rejoined.joined(t)
	if id == "0123456789abcdef0123" {
		t.Fatal("the agent joined under the credential the coordinator did not know")
	}
	data, err := os.ReadFile(identity)
	if err != nil || !strings.Contains(string(data), `"id":"`+id+`"`) {
		t.Errorf("after the new join the identity file holds %s (%v), want id %s", data, err, id)
	}
}
