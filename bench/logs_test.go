package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

const (
	logBytes       = 256 << 20
	logMinRate     = 100 // MB/s
	logMaxAgentMiB = 128
	// logLine is what the job repeats; busybox yes adds the newline. With
	// it, a line is 64 bytes: a MiB holds whole lines.
	logLine = "monkeyci log throughput: a 64-byte line of 256 MiB a job writes"
)

// logWriter is the job's command: it writes logBytes of logLine, 8 KiB at
// a time (as a program's buffered output would), from a MiB made once in
// dir, so that the writer is cheap next to what the figure measures
// (busybox yes through head took 1.4-1.6 s of CPU for 256 MiB on its own,
// about the time the whole path takes).
func logWriter(dir string) string {
	block := dir + "/block"
	return fmt.Sprintf("yes '%s' | head -c %d > %s && i=0 && while [ $i -lt %d ]; do dd if=%s bs=8192 2>/dev/null; i=$((i+1)); done",
		logLine, 1<<20, block, logBytes>>20, block)
}

// logRuns is how many builds the log figure is the median of: a rate of
// a few seconds swings with this machine's speed (the same code measured
// 59 and 112 MB/s minutes apart).
const logRuns = 3

// BenchmarkLogThroughput: one job writes 256 MB to its standard output on
// an agent process linked to a coordinator process, both real. Measured,
// for each of three builds: the rate from the first byte stored by the
// coordinator to the last, and that the stored bytes' sha256 is the
// written bytes'; then the agent process's peak RSS. The figure is the
// median rate.
func BenchmarkLogThroughput(b *testing.B) {
	dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	want := expectedLog()
	repo, commit := gittest.Repo(b, map[string]string{".monkeyci/build.yaml": fmt.Sprintf(
		"- {id: burst, image: %s, script: [%q]}\n", busybox, logWriter("/tmp"))})
	alone := writerAlone(b, want)

	co := startBenchCoordinator(b, os.Getenv("MONKEYCI_BENCH_INPROC") == "1")
	name := "bench-logs-" + coordinator.NewID()[:8]
	agentCmd := exec.Command(testbinary.Path(b), "agent", "--tls=false", "--coordinator", co.addr, "--join-token", co.join,
		"--name", name, "--cpus", "2", "--memory", "8g", "--state-dir", filepath.Join(b.TempDir(), "agent"), "--log-level", "warn")
	var agentErr syncbuf.Buffer
	agentCmd.Stderr = &agentErr
	if err := agentCmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = agentCmd.Process.Kill()
		dockertest.Cleanup(b, map[string]string{engine.LabelAgent: name})
	})

	admin := co.adminClient(b)
	var rates []float64
	sumsOK := true
	for range logRuns {
		rate, sumOK := logRun(b, admin, co.dataDir, repo, commit, want, &agentErr)
		rates = append(rates, rate)
		sumsOK = sumsOK && sumOK
	}
	peakKiB, agentCPU := processUsage(b, strconv.Itoa(agentCmd.Process.Pid))
	_, coCPU := co.usage(b)
	// A drained agent exits 0 once it has nothing left to tell.
	_ = agentCmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- agentCmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			b.Errorf("the drained agent exited with %v; stderr:\n%s", err, agentErr.String())
		}
	case <-time.After(time.Minute):
		b.Errorf("the drained agent did not exit within a minute")
	}

	rate := median(rates)
	peakMiB := float64(peakKiB) / 1024
	b.ReportMetric(rate, "MB/s")
	b.ReportMetric(peakMiB, "agent-peak-MB")
	b.Logf("logs: CPU time for %d builds: agent %.1f s, coordinator %.1f s; the job's writer alone, on the host: %s", logRuns, agentCPU.Seconds(), coCPU.Seconds(), alone)
	b.Logf("logs: %d MB stored at %.0f MB/s, the median of %.0f MB/s (at least %d) %s; sha256 %s; agent peak RSS %.0f MB (at most %d) %s",
		logBytes>>20, rate, rates, logMinRate, verdictAtLeast(rate, logMinRate), map[bool]string{true: "equal", false: "DIFFERENT"}[sumsOK],
		peakMiB, logMaxAgentMiB, verdictAtMost(peakMiB, logMaxAgentMiB))
}

// logRun triggers one build of the log repository and returns the rate
// at which its log was stored, in MB/s, and whether the stored log's
// sha256 is want.
func logRun(b *testing.B, admin fleet.AdminClient, dataDir, repo, commit string, want []byte, agentErr *syncbuf.Buffer) (float64, bool) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	info, err := admin.Trigger(ctx, &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		b.Fatal(err)
	}
	// The stored stream is a file of the coordinator's log store (its
	// layout is in package logstore's doc): its size is what is stored.
	stored := filepath.Join(dataDir, "logs", "builds", info.GetId(), "1", "out-burst.log")
	var first, last time.Time
	var n int64
	for n < logBytes {
		if ctx.Err() != nil {
			b.Fatalf("%d of %d bytes stored within 5 minutes; agent stderr:\n%s", n, logBytes, agentErr.String())
		}
		if st, err := os.Stat(stored); err == nil && st.Size() > n {
			if n == 0 {
				first = time.Now()
			}
			n, last = st.Size(), time.Now()
		}
		time.Sleep(2 * time.Millisecond)
	}
	for {
		end, err := admin.GetBuild(ctx, &fleet.GetBuildRequest{Id: info.GetId()})
		if err != nil {
			b.Fatal(err)
		}
		if end.GetBuild().GetState() == "ended" {
			if end.GetBuild().GetResult() != "success" {
				b.Fatalf("the build ended %s: %s; agent stderr:\n%s", end.GetBuild().GetResult(), end.GetBuild().GetMessage(), agentErr.String())
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	size, sum := storedSum(ctx, b, admin, info.GetId())
	sumOK := size == logBytes && bytes.Equal(sum, want)
	if !sumOK {
		b.Errorf("stored %d bytes with sha256 %x; the job wrote %d with %x", size, sum, logBytes, want)
	}
	return float64(n) / 1e6 / last.Sub(first).Seconds(), sumOK
}

// storedSum reads the job's stored stdout back through the admin API
// (from the blob store, once the build's logs have moved there) and
// returns its size and sha256.
func storedSum(ctx context.Context, b *testing.B, admin fleet.AdminClient, build string) (int64, []byte) {
	b.Helper()
	logs, err := admin.Logs(ctx, &fleet.LogsRequest{Build: build, Job: "burst"})
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	var n int64
	for {
		c, err := logs.Recv()
		if errors.Is(err, io.EOF) {
			return n, h.Sum(nil)
		}
		if err != nil {
			b.Fatal(err)
		}
		if c.GetStream() == "out" {
			h.Write(c.GetData())
			n += int64(len(c.GetData()))
		}
	}
}

// writerAlone runs the job's command on the host's busybox, into a file,
// and says how fast it wrote: the ceiling of the figure on this machine.
func writerAlone(b *testing.B, want []byte) string {
	b.Helper()
	sh, err := exec.LookPath("busybox")
	if err != nil {
		return "not measured (no busybox on the host)"
	}
	dir := b.TempDir()
	out := filepath.Join(dir, "out")
	start := time.Now()
	if msg, err := exec.Command(sh, "sh", "-c", logWriter(dir)+" > "+out).CombinedOutput(); err != nil {
		b.Fatalf("the job's command on the host: %v %s", err, msg)
	}
	took := time.Since(start)
	n, sum := fileSum(b, out)
	if !bytes.Equal(sum, want) {
		b.Fatalf("the job's command wrote %d bytes that are not the expected log", n)
	}
	return fmt.Sprintf("%.0f MB/s", float64(n)/1e6/took.Seconds())
}

// fileSum returns the size and sha256 of a file.
func fileSum(b *testing.B, path string) (int64, []byte) {
	b.Helper()
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		b.Fatal(err)
	}
	return n, h.Sum(nil)
}

// expectedLog is the sha256 of what the job writes.
func expectedLog() []byte {
	h := sha256.New()
	line := []byte(logLine + "\n")
	block := bytes.Repeat(line, (1<<20)/len(line))
	left := logBytes
	for left > 0 {
		w := min(left, len(block))
		h.Write(block[:w])
		left -= w
	}
	return h.Sum(nil)
}
