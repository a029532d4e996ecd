package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/docker"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
)

// scriptCPUMaxRatio: a paused script may use at most this share of the
// CPU it uses unpaused while it waits.
const scriptCPUMaxRatio = 0.02

// waitingScript leaves a CPU-burning process running (standing in for a
// JVM's background threads) and then waits on a 10-second job.
const waitingScript = `(while :; do :; done) &
monkeyci job run wait --image ` + busybox + ` -- 'sleep 10'
kill $!
`

// BenchmarkScriptCPUWhileWaiting: a build script in sh waits on a 10 s job
// while a process of its own burns CPU. Measured is the script container's
// CPU time (its cgroup's cpuacct.usage) during the whole wait, from the
// job's start call to its end (the agent freezes the script once the job's
// container is made), with pausing on against off, both builds side by
// side; the share while the job runs is printed too.
func BenchmarkScriptCPUWhileWaiting(b *testing.B) {
	engine := dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	dir := b.TempDir()
	for name, content := range map[string]string{".monkeyci/script.yaml": "image: " + busybox + "\n", ".monkeyci/build.sh": waitingScript} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	meters := map[bool]*cpuMeter{}
	for _, pause := range []bool{true, false} {
		m := &cpuMeter{engine: engine, job: "wait"}
		meters[pause] = m
		r := newRunnerAs(b, engine, pause, "bench-script-"+strconv.FormatBool(pause))
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := r.Run(context.Background(), agent.BuildSpec{Source: dir}, m)
			if err != nil || out.Result != events.Success {
				m.fail(fmt.Errorf("build with pausing %v: %v %+v", pause, err, out))
			}
		}()
	}
	wg.Wait()
	on, off := meters[true], meters[false]
	for _, m := range []*cpuMeter{on, off} {
		if m.err != nil {
			b.Fatal(m.err)
		}
	}
	ratio := float64(on.fromStart) / float64(off.fromStart)
	verdict := "ok"
	switch {
	case off.fromStart < off.window/4:
		// Without pausing the burner must have had a good share of a CPU,
		// or the ratio says nothing (a machine too busy to tell).
		verdict = "INVALID (the unpaused burner hardly ran)"
	case ratio > scriptCPUMaxRatio:
		verdict = "OVER"
	}
	b.ReportMetric(ms(on.fromStart), "paused-cpu-ms")
	b.ReportMetric(ms(off.fromStart), "unpaused-cpu-ms")
	b.ReportMetric(ratio*100, "percent")
	b.Logf("script CPU while waiting on a 10 s job (a background process burning), from the job's start call to its end: %.0f ms paused, %.0f ms unpaused, %.2f%% (at most %.0f%%) %s; while the job ran: %.0f ms against %.0f ms over %.1f s",
		ms(on.fromStart), ms(off.fromStart), ratio*100, scriptCPUMaxRatio*100, verdict, ms(on.used), ms(off.used), off.window.Seconds())
}

// cpuMeter is a Reporter that reads the script container's CPU use at the
// waiting job's events, as they happen.
type cpuMeter struct {
	engine *docker.Engine
	job    string

	mu        sync.Mutex
	usage     string // the script container's cpuacct file
	atStart   time.Duration
	atUp      time.Duration
	upAt      time.Time
	used      time.Duration // from the job's container up to its end
	fromStart time.Duration // from the script's StartJob (job/queued) to the job's end
	window    time.Duration
	err       error
}

func (m *cpuMeter) Output(string, string, []byte) {}

func (m *cpuMeter) Event(e events.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return
	}
	var err error
	// The script's first call may come before the agent says it started.
	if m.usage == "" && (e.Type == events.ScriptStart || e.Job == m.job) {
		if m.usage, err = scriptCgroup(m.engine, e.Build); err != nil {
			m.err = err
			return
		}
	}
	switch {
	case e.Job != m.job:
	case e.Type == events.JobQueued: // the script's StartJob: its wait begins
		m.atStart, err = readCPU(m.usage)
	case e.Type == events.ContainerStart:
		m.upAt = time.Now()
		m.atUp, err = readCPU(m.usage)
	case e.Type == events.JobEnd:
		var now time.Duration
		now, err = readCPU(m.usage)
		m.used, m.fromStart, m.window = now-m.atUp, now-m.atStart, time.Since(m.upAt)
	}
	if err != nil {
		m.err = err
	}
}

func (m *cpuMeter) fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		m.err = err
	}
}

// scriptCgroup finds the file that counts the build's script container's
// CPU time: cgroup v1 (cpuacct.usage, ns) or v2 (cpu.stat's usage_usec).
func scriptCgroup(engine *docker.Engine, build string) (string, error) {
	ids, err := engine.ListContainers(context.Background(), map[string]string{agent.LabelBuild: build, agent.LabelRole: "script"})
	if err != nil || len(ids) != 1 {
		return "", fmt.Errorf("the script container of %s: %v %v", build, ids, err)
	}
	id := ids[0]
	for _, p := range []string{
		"/sys/fs/cgroup/cpuacct/docker/" + id + "/cpuacct.usage",
		"/sys/fs/cgroup/cpu,cpuacct/docker/" + id + "/cpuacct.usage",
		"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/cpu.stat",
		"/sys/fs/cgroup/docker/" + id + "/cpu.stat",
	} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no cgroup CPU file found for container %s", id)
}

// readCPU reads a container's CPU time so far.
func readCPU(path string) (time.Duration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if filepath.Base(path) == "cpuacct.usage" {
		ns, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		return time.Duration(ns), err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Duration(us) * time.Microsecond, err
		}
	}
	return 0, fmt.Errorf("%s has no usage_usec", path)
}
