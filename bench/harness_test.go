// Package bench measures the figures the issues ask for, each against its
// floor in the same run: `make bench`. Figures are reported as benchmark
// metrics (ratios, medians in ms); nothing here asserts a time.
package bench

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
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

const busybox = dockertest.Busybox

// recorder keeps a build's events, and its jobs' stdout.
type recorder struct {
	mu     sync.Mutex
	events []events.Event
	out    map[string][]byte
}

func (r *recorder) Event(e events.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) Output(job, stream string, data []byte) {
	if stream != "out" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out == nil {
		r.out = map[string][]byte{}
	}
	r.out[job] = append(r.out[job], data...)
}

// newRunner is a runner of agent id "bench"; runners side by side need
// their own (newRunnerAs).
func newRunner(b *testing.B, engine *docker.Engine, pause bool) *agent.Runner {
	return newRunnerAs(b, engine, pause, "bench")
}

func newRunnerAs(b *testing.B, engine *docker.Engine, pause bool, agentID string) *agent.Runner {
	b.Helper()
	r, err := agent.NewRunner(agent.Config{
		Runtime:  engine,
		Ledger:   agent.NewLedger(agent.Resources{MilliCPUs: 2000, Memory: 8 << 30}),
		Logger:   hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr}),
		Binary:   testbinary.Path(b),
		StateDir: b.TempDir(),
		Pause:    pause,
		AgentID:  agentID,
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.Prepare(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// runBuild runs a build whose build.yaml is given and returns its events.
func runBuild(b *testing.B, r *agent.Runner, buildYAML string) []events.Event {
	b.Helper()
	return runBuildOut(b, r, buildYAML).events
}

// runBuildOut is runBuild that keeps the jobs' stdout too.
func runBuildOut(b *testing.B, r *agent.Runner, buildYAML string) *recorder {
	b.Helper()
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".monkeyci"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".monkeyci", "build.yaml"), []byte(buildYAML), 0o644); err != nil {
		b.Fatal(err)
	}
	rec := &recorder{}
	out, err := r.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil || out.Result != events.Success {
		b.Fatalf("bench build: %v %+v", err, out)
	}
	return rec
}

// sequentialJobs is a build of n jobs, each depending on the one before.
func sequentialJobs(n int, line string) string {
	var s strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&s, "- id: j%d\n  image: %s\n  script: [%q]\n", i, busybox, line)
		if i > 0 {
			fmt.Fprintf(&s, "  dependencies: [j%d]\n", i-1)
		}
	}
	return s.String()
}

// median is the middle of xs (the upper one of an even count).
func median[T cmp.Ordered](xs []T) T {
	if len(xs) == 0 {
		var zero T
		return zero
	}
	s := sorted(xs)
	return s[len(s)/2]
}

// quantile returns the q-quantile of ds (nearest rank; 1 is the slowest).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := sorted(ds)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// sorted is a sorted copy of xs.
func sorted[T cmp.Ordered](xs []T) []T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// verdictAtLeast says ok when got reaches floor, else UNDER.
func verdictAtLeast[T cmp.Ordered](got, floor T) string {
	if got >= floor {
		return "ok"
	}
	return "UNDER"
}

// verdictAtMost says ok when got stays within limit, else OVER.
func verdictAtMost[T cmp.Ordered](got, limit T) string {
	if got <= limit {
		return "ok"
	}
	return "OVER"
}

// report prints a figure beside its floor and their ratio.
func report(b *testing.B, name string, ours, floor time.Duration, limit float64) {
	b.Helper()
	ratio := float64(ours) / float64(floor)
	b.ReportMetric(ms(ours), name+"-ms")
	b.ReportMetric(ms(floor), "floor-ms")
	b.ReportMetric(ratio, "ratio")
	verdict := verdictAtMost(ratio, limit)
	b.Logf("%s: ours %.1f ms, floor %.1f ms, ratio %.2f (limit %.2f) %s", name, ms(ours), ms(floor), ratio, limit, verdict)
}

// figure is one of ours, a time per round, against a floor measured in
// the same rounds, with its limit (at most).
type figure struct {
	name  string
	ours  []time.Duration
	limit float64
}

// reportAtMost reports each figure's median time and its ratio to the
// floor, and logs them, what says what the floor times, with the verdict
// against its limit. The ratio is the median of each round's ratio: the
// two were measured side by side in it, so a machine that slows over the
// run (seen here: a file read from memory 40% slower after a minute's
// work) weighs on both alike.
func reportAtMost(b *testing.B, floor []time.Duration, what string, figures ...figure) {
	b.Helper()
	for _, r := range figures {
		ratios := pairedRatios(r.ours, floor)
		ratio := median(ratios)
		b.ReportMetric(ms(median(r.ours)), r.name+"-ms")
		b.ReportMetric(ratio, r.name+"-ratio")
		b.Logf("%s: ours %.1f ms, floor %.1f ms (%s), medians; the median of the rounds' ratios %.2f (limit %.2f) %s; the rounds' ratios %.2f",
			r.name, ms(median(r.ours)), ms(median(floor)), what, ratio, r.limit, verdictAtMost(ratio, r.limit), sorted(ratios))
	}
}

// pairedRatios are ours[i]/floor[i], round by round.
func pairedRatios(ours, floor []time.Duration) []float64 {
	var ratios []float64
	for i := range min(len(ours), len(floor)) {
		ratios = append(ratios, float64(ours[i])/float64(floor[i]))
	}
	return ratios
}
