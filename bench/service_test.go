package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
)

// serviceLimit is how much later than the service's own process listens
// its dependents' first commands may run.
const serviceLimit = 200 * time.Millisecond

// BenchmarkServiceToDependents: a build of a service (bench/listener, which
// prints when it began to listen on port 8080) and two jobs that depend on
// it. Measured in each build: from the service's job/start (told just
// before its start call) to the later of its dependents' first commands,
// against from the same start to the service's own process listening, as
// it says itself; the difference is what waiting for the service costs
// its dependents. For scale, in alternating rounds: a plain container of
// the same image on a network of its own, from its start call to its port
// accepting a connection from the host (in the build, three containers
// start at once).
func BenchmarkServiceToDependents(b *testing.B) {
	rt := dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	r := newRunner(b, rt, true)
	image := listenerImage(b, rt)
	ctx := context.Background()
	labels := map[string]string{engine.LabelAgent: "bench"}
	network := fmt.Sprintf("monkeyci-bench-%d-service", os.Getpid())
	if err := rt.CreateNetwork(ctx, network, labels); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.RemoveNetwork(context.Background(), network) })
	build := fmt.Sprintf(`
- {id: web, image: %s, cmd: ["8080"], expose: [8080], cpus: 0.5}
- {id: one, image: %s, dependencies: [web], cpus: 0.5, script: ["true"]}
- {id: two, image: %s, dependencies: [web], cpus: 0.5, script: ["true"]}
`, image, busybox, busybox)
	const rounds, perRound = 3, 3
	var ours, listen, plain []time.Duration
	for round := 0; round < rounds; round++ {
		for i := 0; i < perRound; i++ {
			plain = append(plain, listenTime(b, rt, image, network, labels))
		}
		for i := 0; i < perRound; i++ {
			rec := runBuildOut(b, r, build)
			var started, first time.Time
			for _, e := range rec.events {
				switch {
				case e.Type == events.JobStart && e.Job == "web":
					started = e.Time
				case e.Type == events.CommandStart && e.Job != "web" && e.Time.After(first):
					first = e.Time
				}
			}
			ns, err := strconv.ParseInt(strings.TrimSpace(string(rec.out["web"])), 10, 64)
			if err != nil || started.IsZero() || first.IsZero() {
				b.Fatalf("the service printed %q (%v); started %v, first command %v", rec.out["web"], err, started, first)
			}
			ours = append(ours, first.Sub(started))
			listen = append(listen, time.Unix(0, ns).Sub(started))
		}
	}
	o, l, p := median(ours), median(listen), median(plain)
	b.ReportMetric(ms(o), "dependents-ms")
	b.ReportMetric(ms(l), "listening-ms")
	b.ReportMetric(ms(p), "plain-listening-ms")
	b.Logf("service: its dependents' first commands %.0f ms after its start, its own process listening after %.0f ms: %.0f ms more (at most %.0f) %s; a plain container of it listens %.0f ms after its start call",
		ms(o), ms(l), ms(o-l), ms(serviceLimit), verdictAtMost(o-l, serviceLimit), ms(p))
}

// listenerImage imports an image holding only bench/listener.
func listenerImage(b *testing.B, rt engine.Runtime) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "listener")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./listener")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the listener: %v %s", err, out)
	}
	ref := "monkeyci/bench-listener:latest"
	if err := engine.ImportBinaryImage(context.Background(), rt, ref, bin, "/listener"); err != nil {
		b.Fatal(err)
	}
	return ref
}

// listenTime starts a plain listener container on network and returns the
// time from the start call to its port accepting a connection.
func listenTime(b *testing.B, rt engine.Runtime, image, network string, labels map[string]string) time.Duration {
	b.Helper()
	ctx := context.Background()
	id, err := rt.Create(ctx, engine.ContainerSpec{Image: image, Cmd: []string{"8080"}, Labels: labels, Network: network, NanoCPUs: 5e8, Memory: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Remove(context.Background(), id)
	start := time.Now()
	if err := rt.Start(ctx, id); err != nil {
		b.Fatal(err)
	}
	ip, err := rt.Address(ctx, id, network)
	if err != nil {
		b.Fatal(err)
	}
	addr := net.JoinHostPort(ip, "8080")
	for deadline := start.Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return time.Since(start)
		}
	}
	b.Fatal("the listener never listened")
	return 0
}
