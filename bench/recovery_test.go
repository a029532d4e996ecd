package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// recoveryLimit is how soon after a kill -9 of its agent a build of a
// 5 s job must have ended (it took some 41 s with a second agent idle,
// 50 s with the one agent restarted, when only the lease moved it on).
const recoveryLimit = 12 * time.Second

// BenchmarkRecoveryAfterKill: the agent running a build (one job of 5 s)
// is killed with SIGKILL once the job runs; measured is the time from the
// kill to the build stored as ended, successfully, as attempt 2: with a
// second agent idle (the coordinator sees the stream end and, after its
// grace, sends the build there), and with the only agent restarted 2 s
// after the kill (its hello holds no build: it is sent the build again at
// once). Real processes: coordinator, agents, Docker.
func BenchmarkRecoveryAfterKill(b *testing.B) {
	dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	repo, commit := gittest.Repo(b, map[string]string{".monkeyci/build.yaml": fmt.Sprintf(
		"- {id: five, image: %s, script: ['echo started', 'sleep 5']}\n", busybox)})
	for _, c := range []struct {
		name     string
		restart  bool
		scenario string
	}{
		{"second-agent-idle", false, "kill -9 of the build's agent, a second agent idle"},
		{"restarted-after-2s", true, "kill -9 of the only agent, restarted 2 s later"},
	} {
		b.Run(c.name, func(b *testing.B) {
			took, why := recoveryRun(b, repo, commit, c.restart)
			b.ReportMetric(took.Seconds(), "s-kill-to-end")
			b.Logf("recovery: %s: the build ended as attempt 2 (%s) %.1f s after the kill (at most %.0f s) %s",
				c.scenario, why, took.Seconds(), recoveryLimit.Seconds(), verdictAtMost(took, recoveryLimit))
		})
	}
}

// recoveryRun runs one kill and returns how long the build took to end
// after it, and why its attempt 2 exists.
func recoveryRun(b *testing.B, repo, commit string, restart bool) (time.Duration, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	co := startBenchCoordinator(b, false)
	admin := co.adminClient(b)
	name := "bench-recovery-" + coordinator.NewID()[:8]
	state := b.TempDir()
	first := startBenchAgent(b, co, name, state)
	bld, err := admin.Trigger(ctx, &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		b.Fatal(err)
	}
	// The job runs: its first line is stored (the logstore's layout).
	logFile := filepath.Join(co.dataDir, "logs", "builds", bld.GetId(), "1", "out-five.log")
	for {
		if st, err := os.Stat(logFile); err == nil && st.Size() > 0 {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("the job did not start; agent:\n%s", first.out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !restart {
		idle := startBenchAgent(b, co, name+"-idle", b.TempDir())
		waitAgents(ctx, b, admin, 2, idle)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		b.Fatal(err)
	}
	killed := time.Now()
	if restart {
		first.done <- <-first.done // gone; its cleanup reads it again
		time.Sleep(2*time.Second - time.Since(killed))
		first = startBenchAgent(b, co, name, state)
	}
	for {
		got, err := admin.GetBuild(ctx, &fleet.GetBuildRequest{Id: bld.GetId()})
		if err == nil && got.GetBuild().GetState() == "ended" {
			took := time.Since(killed)
			info := got.GetBuild()
			if info.GetResult() != "success" || info.GetAttempt() != 2 {
				b.Fatalf("the build ended %s at attempt %d (%s), want success at attempt 2", info.GetResult(), info.GetAttempt(), info.GetMessage())
			}
			// Where the time went: the coordinator's part, then the build's.
			sent, job := info.GetStarted().AsTime().Sub(killed), time.Duration(0)
			for _, e := range got.GetEvents() {
				var ev events.Event
				if json.Unmarshal(e.GetEvent(), &ev) == nil && e.GetAttempt() == 2 && ev.Type == events.CommandStart && job == 0 {
					job = ev.Time.Sub(killed)
				}
			}
			b.Logf("recovery: attempt 2 sent %.1f s after the kill, its job's first command %.1f s after", sent.Seconds(), job.Seconds())
			return took, info.GetAttemptReasons()[2]
		}
		if ctx.Err() != nil {
			b.Fatalf("the build did not end; agent:\n%s", first.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type benchAgent struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan error
}

// startBenchAgent starts `monkeyci agent` against co, with 2 CPUs.
// More arguments may follow (--labels).
func startBenchAgent(b *testing.B, co *benchCoordinator, name, state string, args ...string) *benchAgent {
	b.Helper()
	a := &benchAgent{out: &syncbuf.Buffer{}, done: make(chan error, 1)}
	a.cmd = exec.Command(testbinary.Path(b), append([]string{"agent", "--tls=false", "--coordinator", co.addr, "--join-token", co.join,
		"--name", name, "--cpus", "2", "--memory", "8g", "--state-dir", state, "--log-level", "warn"}, args...)...)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	b.Cleanup(func() {
		_ = a.cmd.Process.Kill()
		<-a.done
		dockertest.Cleanup(b, map[string]string{engine.LabelAgent: name})
	})
	return a
}

// waitAgents waits until n agents are connected.
func waitAgents(ctx context.Context, b *testing.B, admin fleet.AdminClient, n int, last *benchAgent) {
	b.Helper()
	for {
		r, err := admin.ListAgents(ctx, &fleet.ListAgentsRequest{})
		ready := 0
		for _, a := range r.GetAgents() {
			if a.GetState() == "ready" {
				ready++
			}
		}
		if err == nil && ready >= n {
			return
		}
		if ctx.Err() != nil {
			b.Fatalf("%d agents did not connect; the last one:\n%s", n, last.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
