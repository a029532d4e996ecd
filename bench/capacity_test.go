package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/link"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/server"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// burn is a job line that keeps one CPU busy until it has had 6 s of it,
// then says how much it counted. Sized in CPU time, not in work: the two
// vCPUs here run the same count at speeds a third apart, and which of them
// is slow changes by the minute (two of the same count side by side took
// 3.8 s and 5.9 s), which no scheduler sees or causes. Against CPU time a
// job lasts 6 s on either, longer only when something in this machine
// takes its CPU, which is what the figure is about. CI jobs run for tens
// of seconds; much shorter ones would measure the engine's container
// starts, which pausing does not speed up, instead of the CPU it lends.
// The kernel counts in ticks of 1/100 s (USER_HZ); fields 14 and 15 of
// /proc/self/stat are the shell's user and system time.
const burn = `t=0; n=0; while [ $t -lt 600 ]; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; n=$((n+1)); read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u s _ < /proc/self/stat; t=$((u+s)); done; echo "counted $((n*20)) thousand in 6 s of CPU"`

// BenchmarkCapacityFromPausing: one agent with 2 CPUs takes 8 builds, each
// a script and two sequential CPU-bound jobs of 1 CPU (6 s of CPU each),
// through a real coordinator. With pausing, a waiting script lends its CPU
// to jobs, so two jobs run where one ran: the makespan without pausing over
// the makespan with it.
//
// Both are taken in two halves of 4 builds, in the order with, without,
// without, with (A-B-B-A): a drift of the machine weighs the same on both
// sides, and two halves that disagree show a disturbed run. Builds run one
// at a time without pausing and two at a time with it, so two halves take
// what 8 in a row take, give or take a wave's tail.
func BenchmarkCapacityFromPausing(b *testing.B) {
	dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	repo, commit := gittest.Repo(b, map[string]string{".monkeyci/build.yaml": fmt.Sprintf(
		"- {id: first, image: %s, script: [%q]}\n- {id: second, image: %s, script: [%q], dependencies: [first]}\n", busybox, burn, busybox, burn)})
	with1 := makespan(b, true, 4, repo, commit)
	without1 := makespan(b, false, 4, repo, commit)
	without2 := makespan(b, false, 4, repo, commit)
	with2 := makespan(b, true, 4, repo, commit)
	without, with := without1+without2, with1+with2
	ratio := float64(without) / float64(with)
	b.ReportMetric(without.Seconds(), "no-pause-s")
	b.ReportMetric(with.Seconds(), "pause-s")
	b.ReportMetric(ratio, "ratio")
	verdict := verdictAtLeast(ratio, 1.8)
	b.Logf("capacity from pausing (jobs of 6 s of CPU): makespan %.1fs without pausing (%.1fs + %.1fs), %.1fs with (%.1fs + %.1fs; taken with, without, without, with), ratio %.2f (at least 1.80) %s",
		without.Seconds(), without1.Seconds(), without2.Seconds(), with.Seconds(), with1.Seconds(), with2.Seconds(), ratio, verdict)
}

// makespan runs n builds on a fresh coordinator and agent and returns the
// time from the first trigger to the last build's end.
func makespan(b *testing.B, pause bool, n int, repo, commit string) time.Duration {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, _ := startFleet(ctx, b, pause)
	c := srv.Coordinator
	start := time.Now()
	var ids []string
	for i := 0; i < n; i++ {
		bld, err := c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: repo, Commit: commit}})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, bld.ID)
	}
	for _, id := range ids {
		for {
			bld, err := c.Build(ctx, id)
			if err != nil {
				b.Fatal(err)
			}
			if bld.State == coordinator.Ended {
				if bld.Result != events.Success {
					b.Fatalf("bench build %s ended %s: %s", id, bld.Result, bld.Message)
				}
				break
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatal("the builds did not end within 10 minutes")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	span := time.Since(start)
	if os.Getenv("MONKEYCI_BENCH_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "pause=%v\n", pause)
		for _, id := range ids {
			timeline(ctx, c.AdminServer(), id, start)
		}
	}
	return span
}

// startFleet runs a coordinator and an agent of 2 CPUs in this process
// until ctx ends (the caller ends it before the benchmark returns); it
// returns the coordinator and its data directory.
func startFleet(ctx context.Context, b *testing.B, pause bool) (*server.Server, string) {
	b.Helper()
	dataDir := b.TempDir()
	srv, err := server.Start(ctx, server.Config{DataDir: dataDir, GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Lease: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	engine := dockertest.Engine(b)
	ledger := agent.NewLedger(agent.Resources{MilliCPUs: 2000, Memory: 16 << 30})
	quiet := hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr})
	agentID := "bench-" + coordinator.NewID()[:8]
	runner, err := agent.NewRunner(agent.Config{Runtime: engine, Ledger: ledger, Binary: testbinary.Path(b), StateDir: b.TempDir(), Pause: pause, AgentID: agentID, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := runner.Prepare(ctx); err != nil {
		b.Fatal(err)
	}
	l, err := link.New(link.Config{Coordinator: srv.GRPCAddr, JoinToken: srv.JoinToken, Name: agentID, Runner: runner, Ledger: ledger,
		StateDir: filepath.Join(b.TempDir(), "agent"), Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = l.Run(ctx)
		srv.Close()
	}()
	b.Cleanup(func() {
		<-stopped // ctx has ended by now
		dockertest.Cleanup(b, map[string]string{agent.LabelAgent: agentID})
	})
	// Measurements start with the agent connected, not with its dial.
	for {
		list, err := srv.Coordinator.AdminServer().ListAgents(ctx, &fleet.ListAgentsRequest{})
		if err != nil {
			b.Fatal(err)
		}
		if len(list.GetAgents()) > 0 {
			break
		}
		if ctx.Err() != nil {
			b.Fatal("the bench agent did not connect")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return srv, dataDir
}
