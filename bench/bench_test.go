package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
)

// BenchmarkJobStartOverhead: N sequential `true` jobs through the runner
// (from the script's StartJob to the job's end, its container removed)
// against N `docker run --rm --network NET IMAGE true`, in alternating
// rounds. NET is a network of its own, as each build's is: a container on
// one starts some 250 ms later than on docker's default bridge, and that
// is the engine's cost of keeping builds apart, not ours.
func BenchmarkJobStartOverhead(b *testing.B) {
	rt := dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	r := newRunner(b, rt, true)
	network := fmt.Sprintf("monkeyci-bench-%d-network", os.Getpid())
	if out, err := exec.Command("docker", "network", "create", network).CombinedOutput(); err != nil {
		b.Fatalf("docker network create: %v %s", err, out)
	}
	b.Cleanup(func() { _ = exec.Command("docker", "network", "rm", network).Run() })
	const rounds, perRound = 3, 5
	var ours, cli []time.Duration
	for round := 0; round < rounds; round++ {
		for i := 0; i < perRound; i++ {
			start := time.Now()
			if out, err := exec.Command("docker", "run", "--rm", "--network", network, busybox, "true").CombinedOutput(); err != nil {
				b.Fatalf("docker run: %v %s", err, out)
			}
			cli = append(cli, time.Since(start))
		}
		queued := map[string]time.Time{}
		for _, e := range runBuild(b, r, sequentialJobs(perRound, "true")) {
			switch e.Type {
			case events.JobQueued:
				queued[e.Job] = e.Time
			case events.JobEnd:
				ours = append(ours, e.Time.Sub(queued[e.Job]))
			}
		}
	}
	report(b, "job", median(ours), median(cli), 1.15)
}

// BenchmarkPauseUnpause: a script's pause and resume through the runner
// (from the await's arrival to the frozen script, plus from the job's end to
// the resumed script) against bare pause + unpause calls on a plain
// container, in alternating rounds. The bare calls are made where the
// runner makes its own: the pause right after a job's container is made,
// the unpause right after it ran and was removed. How long a call takes
// depends on what the engine did just before: made back to back, each
// finds dockerd, containerd, the shim and runc awake and takes about 2 ms
// less; made after a quiet 300 ms, about 2 ms more. Neither is how a
// script's pause comes, one per job; both are logged beside.
func BenchmarkPauseUnpause(b *testing.B) {
	rt := dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	r := newRunner(b, rt, true)
	ctx := context.Background()
	plain, err := rt.Create(ctx, engine.ContainerSpec{Image: busybox, Cmd: []string{"sleep", "3600"}, Labels: map[string]string{engine.LabelAgent: "bench"}, Network: "none"})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Remove(context.Background(), plain)
	if err := rt.Start(ctx, plain); err != nil {
		b.Fatal(err)
	}
	const rounds, perRound = 4, 6
	const jobLength = 300 * time.Millisecond // the jobs' "sleep 0.3"
	var ours, bare, backToBack, quiet, pauses, resumes []time.Duration
	call := func(f func(context.Context, string) error) time.Duration {
		start := time.Now()
		if err := f(ctx, plain); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	network := fmt.Sprintf("monkeyci-bench-%d-pause", os.Getpid())
	if err := rt.CreateNetwork(ctx, network, map[string]string{engine.LabelAgent: "bench"}); err != nil {
		b.Fatal(err)
	}
	defer rt.RemoveNetwork(context.Background(), network)
	// job runs a job's container around the bare calls, as the runner does.
	job := func(pause, unpause func()) {
		id, err := rt.Create(ctx, engine.ContainerSpec{Image: busybox, Cmd: []string{"sleep", "0.3"}, Labels: map[string]string{engine.LabelAgent: "bench"}, Network: network})
		if err != nil {
			b.Fatal(err)
		}
		pause()
		if err := rt.Start(ctx, id); err != nil {
			b.Fatal(err)
		}
		if _, err := rt.Wait(ctx, id); err != nil {
			b.Fatal(err)
		}
		if err := rt.Remove(ctx, id); err != nil {
			b.Fatal(err)
		}
		unpause()
	}
	for round := 0; round < rounds; round++ {
		for i := 0; i < perRound; i++ {
			var paused, unpaused time.Duration
			job(func() { paused = call(rt.Pause) }, func() { unpaused = call(rt.Unpause) })
			bare = append(bare, paused+unpaused)
			backToBack = append(backToBack, call(rt.Pause)+call(rt.Unpause))
			time.Sleep(jobLength)
			paused = call(rt.Pause)
			time.Sleep(jobLength)
			quiet = append(quiet, paused+call(rt.Unpause))
		}
		var pausing time.Duration
		var jobEnd time.Time
		for _, e := range runBuild(b, r, sequentialJobs(perRound, "sleep 0.3")) {
			switch e.Type {
			case events.ScriptPaused:
				pausing = e.Duration
			case events.JobEnd:
				jobEnd = e.Time
			case events.ScriptResumed:
				ours = append(ours, pausing+e.Time.Sub(jobEnd))
				pauses, resumes = append(pauses, pausing), append(resumes, e.Time.Sub(jobEnd))
			}
		}
	}
	b.Logf("through the runner: freezing %.1f ms, resuming %.1f ms (medians); bare calls for both: %.1f ms beside a job (the floor), %.1f ms back to back, %.1f ms after a quiet %s",
		ms(median(pauses)), ms(median(resumes)), ms(median(bare)), ms(median(backToBack)), ms(median(quiet)), jobLength)
	report(b, "pause+unpause", median(ours), median(bare), 1.2)
}

// BenchmarkScriptStart: from the script container's start call to its first
// job API call, against the floor: the same start of a container whose only
// process dials the socket and sends one byte.
func BenchmarkScriptStart(b *testing.B) {
	rt := dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	r := newRunner(b, rt, true)
	probe := probeImage(b, rt)
	const rounds, perRound = 3, 4
	var ours, floor []time.Duration
	for round := 0; round < rounds; round++ {
		for i := 0; i < perRound; i++ {
			floor = append(floor, probeStart(b, rt, probe))
		}
		for i := 0; i < perRound; i++ {
			var started time.Time
			for _, e := range runBuild(b, r, sequentialJobs(1, "true")) {
				if e.Type == events.ScriptInitializing {
					started = e.Time
				}
				if e.Type == events.JobQueued { // sent by the first job API call
					ours = append(ours, e.Time.Sub(started))
					break
				}
			}
		}
	}
	report(b, "script-start", median(ours), median(floor), 1.2)
}

// probeImage imports an image holding only the probe binary.
func probeImage(b *testing.B, rt engine.Runtime) string {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "probe")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./probe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the probe: %v %s", err, out)
	}
	ref := "monkeyci/bench-probe:latest"
	if err := engine.ImportBinaryImage(context.Background(), rt, ref, bin, "/probe"); err != nil {
		b.Fatal(err)
	}
	return ref
}

// probeStart starts a probe container set up like a script container and
// returns the time from the start call to the byte arriving.
func probeStart(b *testing.B, rt engine.Runtime, image string) time.Duration {
	b.Helper()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "probe-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", filepath.Join(dir, "job.sock"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	labels := map[string]string{engine.LabelAgent: "bench"}
	vol := "monkeyci-bench-probe-" + strings.ReplaceAll(filepath.Base(dir), "probe-", "")
	if err := rt.CreateVolume(ctx, vol, labels); err != nil {
		b.Fatal(err)
	}
	defer rt.RemoveVolume(context.Background(), vol)
	id, err := rt.Create(ctx, engine.ContainerSpec{
		Image: image, Cmd: []string{"/run/monkeyci/job.sock"}, WorkDir: "/workspace", Labels: labels,
		Mounts:   []engine.Mount{{Volume: vol, Target: "/workspace"}, {Source: dir, Target: "/run/monkeyci"}},
		NanoCPUs: 1e9, Memory: 1 << 30, Network: "none",
	})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Remove(context.Background(), id)
	got := make(chan time.Time, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		one := make([]byte, 1)
		_, _ = c.Read(one)
		got <- time.Now()
		c.Close()
	}()
	start := time.Now()
	if err := rt.Start(ctx, id); err != nil {
		b.Fatal(err)
	}
	select {
	case at := <-got:
		return at.Sub(start)
	case <-time.After(time.Minute):
		b.Fatal("the probe never dialed")
	}
	return 0
}
