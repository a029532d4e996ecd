package agent_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
)

// hooked is a recorder that first hands each event to on, in the goroutine
// that reports it: the container it tells of is still there.
type hooked struct {
	*recorder
	on func(events.Event)
}

func (h hooked) Event(e events.Event) {
	h.on(e)
	h.recorder.Event(e)
}

// inspectOne inspects the one container of the build with the labels.
func (f *fixture) inspectOne(t *testing.T, build string, kv ...string) container.InspectResponse {
	t.Helper()
	info, err := f.lookOne(build, kv...)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// lookOne is inspectOne for a goroutine not the test's (a reporter's
// hook), where t.Fatal must not be called.
func (f *fixture) lookOne(build string, kv ...string) (container.InspectResponse, error) {
	labels := map[string]string{agent.LabelBuild: build}
	for i := 0; i+1 < len(kv); i += 2 {
		labels[kv[i]] = kv[i+1]
	}
	ctx := context.Background()
	ids, err := f.engine.ListContainers(ctx, labels)
	if err != nil || len(ids) != 1 {
		return container.InspectResponse{}, fmt.Errorf("containers %v: %v %v", labels, ids, err)
	}
	return f.engine.Inspect(ctx, ids[0])
}

func TestBuildContainersAreConfined(t *testing.T) {
	f := newFixtureWith(t, twoCPUs, true, func(c *agent.Config) { c.Pids = 321 })
	dir := repo(t, `
id: probe
image: monkeyci/busybox:latest
script:
  - grep -E '^(NoNewPrivs|CapEff):' /proc/self/status
  - if mknod /tmp/null c 1 3; then echo mknod-worked; exit 1; fi
`, map[string]string{})
	const build = "confined"
	var mu sync.Mutex
	seen := map[string]container.InspectResponse{}
	rep := hooked{newRecorder(), func(e events.Event) {
		if e.Type != events.CommandStart || e.Job != "probe" || e.Command != "0" {
			return
		}
		// The job's first line runs: both containers are up.
		for _, role := range []string{"job", "script"} {
			info, err := f.lookOne(build, agent.LabelRole, role)
			if err != nil {
				t.Error(err) // and not seen: the check below stops there
				continue
			}
			mu.Lock()
			seen[role] = info
			mu.Unlock()
		}
	}}
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{ID: build, Source: dir}, rep)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%+v %v\n%s", out, err, rep.out("probe"))
	}
	network := "monkeyci-" + build + "-network"
	for _, role := range []string{"script", "job"} {
		info, ok := seen[role]
		if !ok {
			t.Fatalf("the %s container was not inspected", role)
		}
		h := info.HostConfig
		if h.PidsLimit == nil || *h.PidsLimit != 321 {
			t.Errorf("%s: PidsLimit %v, want the agent's 321", role, h.PidsLimit)
		}
		if !slices.Contains(h.SecurityOpt, "no-new-privileges") {
			t.Errorf("%s: SecurityOpt %q lacks no-new-privileges", role, h.SecurityOpt)
		}
		dropped := []string{}
		for _, c := range h.CapDrop {
			dropped = append(dropped, strings.TrimPrefix(c, "CAP_"))
		}
		if slices.Sort(dropped); !slices.Equal(dropped, []string{"MKNOD", "NET_RAW"}) {
			t.Errorf("%s: CapDrop %q", role, h.CapDrop)
		}
		if h.Privileged || len(h.CapAdd) > 0 || info.Config.User != "" {
			t.Errorf("%s: privileged %v, CapAdd %q, user %q (the image's user is kept)", role, h.Privileged, h.CapAdd, info.Config.User)
		}
		for _, m := range info.Mounts { // the engine's socket is the host
			if strings.Contains(m.Source, "docker.sock") || strings.Contains(m.Destination, "docker.sock") {
				t.Errorf("%s: mounts the engine's socket: %+v", role, m)
			}
		}
		want := network // a job's; the script speaks to the agent through its socket only
		if role == "script" {
			want = "none"
		}
		if string(h.NetworkMode) != want || len(info.NetworkSettings.Networks) != 1 || info.NetworkSettings.Networks[want] == nil {
			t.Errorf("%s: network mode %q, networks %v, want only %s", role, h.NetworkMode, slices.Collect(maps.Keys(info.NetworkSettings.Networks)), want)
		}
	}
	if ep := seen["job"].NetworkSettings.Networks[network]; ep == nil || !slices.Contains(ep.Aliases, "probe") {
		t.Errorf("the job is not known by its id on the build's network: %+v", ep)
	}
	// What the job saw of itself.
	text := rep.out("probe")
	if !strings.Contains(text, "NoNewPrivs:\t1") {
		t.Errorf("job's status lacks NoNewPrivs 1:\n%s", text)
	}
	_, capHex, _ := strings.Cut(text, "CapEff:\t")
	caps, err := strconv.ParseUint(strings.TrimSpace(strings.SplitN(capHex, "\n", 2)[0]), 16, 64)
	if err != nil {
		t.Fatalf("job's CapEff: %v in\n%s", err, text)
	}
	if caps&(1<<13|1<<27) != 0 { // CAP_NET_RAW, CAP_MKNOD
		t.Errorf("job's effective capabilities %#x hold NET_RAW or MKNOD", caps)
	}
}

// stream is what a job wrote to stdout ("out") or stderr ("err").
func (r *recorder) stream(job, stream string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.output[job+"/"+stream]; ok {
		return b.String()
	}
	return ""
}

// A job reaches another job of its build by its id; a job of another
// build of the same agent reaches it neither by name nor by address (by
// address: on a host with the agent hosts' firewall, as every agent's).
func TestJobsReachOnlyTheirOwnBuild(t *testing.T) {
	dockertest.RequireFirewall(t)
	f := newFixture(t, agent.Resources{MilliCPUs: 4000, Memory: 16 << 30}, true)
	const request = `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 %s 8080 | grep -q hello`
	dirA := repo(t, `
- id: server
  image: monkeyci/busybox:latest
  script: ["mkdir /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]
- id: client
  image: monkeyci/busybox:latest
  script:
    - for i in $(seq 150); do if `+fmt.Sprintf(request, "server")+`; then echo reached server; exit 0; fi; sleep 0.2; done; exit 1
`, map[string]string{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	recA := newRecorder()
	doneA := make(chan agent.Outcome, 1)
	go func() {
		out, _ := f.runner.Run(ctx, agent.BuildSpec{ID: "build-a", Source: dirA}, recA)
		doneA <- out
	}()
	end := recA.waitFor(t, "client's job/end", func(e events.Event) bool { return e.Type == events.JobEnd && e.Job == "client" })
	if end.Status != events.Success {
		t.Fatalf("build A's client did not reach its server by name: %+v\n%s", end, recA.out("client"))
	}
	server := f.inspectOne(t, "build-a", agent.LabelJob, "server")
	ep := server.NetworkSettings.Networks["monkeyci-build-a-network"]
	if ep == nil || ep.IPAddress == "" {
		t.Fatalf("server's networks: %+v", server.NetworkSettings.Networks)
	}
	addr := ep.IPAddress
	listening := func() {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr+":8080", 10*time.Second)
		if err != nil {
			t.Fatalf("the server of build A does not answer the host: %v", err)
		}
		c.Close()
	}
	listening()

	// The server is up: one try each, a timeout is the answer.
	dirB := repo(t, `
id: intruder
image: monkeyci/busybox:latest
script:
  - if `+fmt.Sprintf(request, addr)+`; then echo reached by address; fi
  - if `+fmt.Sprintf(request, "server")+`; then echo reached by name; fi
  - echo tried
`, map[string]string{})
	recB := newRecorder()
	outB, err := f.runner.Run(ctx, agent.BuildSpec{ID: "build-b", Source: dirB}, recB)
	if err != nil || outB.Result != events.Success {
		t.Fatalf("build B: %+v %v", outB, err)
	}
	if got := recB.out("intruder"); strings.Contains(got, "reached") || !strings.Contains(got, "tried") {
		t.Errorf("a job of build B reached build A's server: %q", got)
	}
	listening() // still up: its silence was the network's
	cancel()
	if out := <-doneA; out.Result != events.Canceled {
		t.Errorf("build A: %s, want canceled", out.Result)
	}
}

// A fork bomb in a job meets its container's process limit (its pids, a
// quarter of a CPU), and a build run on the same agent while the bomb's job
// lives succeeds. The bomb's processes die as their forks fail (busybox sh
// gives up such a process); a sleep started before it keeps the job alive
// until its timeout fails it.
func TestForkBombFailsItsJobAndSparesTheAgent(t *testing.T) {
	f := newFixture(t, agent.Resources{MilliCPUs: 4000, Memory: 16 << 30}, true)
	bomb := repo(t, `
id: bomb
image: monkeyci/busybox:latest
timeout: 30s
pids: 100
cpus: 0.25
script: ["sleep 600 & (f() { while :; do f & done; }; f); wait"]
`, map[string]string{})
	var host container.HostConfig
	rec := hooked{newRecorder(), func(e events.Event) {
		if e.Type == events.CommandStart && e.Job == "bomb" {
			info, err := f.lookOne("bomb", agent.LabelJob, "bomb")
			if err != nil {
				t.Error(err)
				return
			}
			host = *info.HostConfig
		}
	}}
	done := make(chan agent.Outcome, 1)
	go func() {
		out, err := f.runner.Run(context.Background(), agent.BuildSpec{ID: "bomb", Source: bomb}, rec)
		if err != nil {
			t.Error(err)
		}
		done <- out
	}()
	rec.waitFor(t, "the bomb's command/start", func(e events.Event) bool { return e.Type == events.CommandStart && e.Job == "bomb" })
	if host.PidsLimit == nil || *host.PidsLimit != 100 || host.NanoCPUs != 250_000_000 {
		t.Errorf("the bomb's container: PidsLimit %v, NanoCPUs %d, want the job's 100 and 0.25 CPUs", host.PidsLimit, host.NanoCPUs)
	}

	rec.waitOutput(t, "bomb", "err", "can't fork") // at its limit

	calm := repo(t, `
id: calm
image: monkeyci/busybox:latest
script: ["echo still here"]
`, map[string]string{})
	rec2 := newRecorder()
	out2, err := f.runner.Run(context.Background(), agent.BuildSpec{ID: "calm", Source: calm}, rec2)
	if err != nil || out2.Result != events.Success || !strings.Contains(rec2.out("calm"), "still here") {
		t.Fatalf("the build beside the bomb: %+v %v %q", out2, err, rec2.out("calm"))
	}

	out := <-done
	job := jobResult(t, out, "bomb")
	if job.Result != events.Error || !strings.Contains(job.Message, "timed out") {
		t.Fatalf("the fork bomb's job: %+v, want an error by its timeout", job)
	}
	// Bounded by its timeout, plus a generous margin for a loaded machine.
	if job.Duration > 30*time.Second+45*time.Second {
		t.Errorf("the bomb's job took %s", job.Duration)
	}
	t.Logf("bomb: %s after %s: %s", job.Result, job.Duration.Round(time.Millisecond), job.Message)
}

// What a killed agent left (a build's network) goes at its next start.
func TestSweepRemovesLeftoverNetworks(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	ctx := context.Background()
	name := "monkeyci-left-" + f.agent + "-network"
	if err := f.engine.CreateNetwork(ctx, name, map[string]string{agent.LabelAgent: f.agent, agent.LabelBuild: "left"}); err != nil {
		t.Fatal(err)
	}
	n, err := f.runner.Sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("swept %d: %v, want the network", n, err)
	}
	if left, err := f.engine.ListNetworks(ctx, map[string]string{agent.LabelAgent: f.agent}); err != nil || len(left) != 0 {
		t.Errorf("networks left: %v %v", left, err)
	}
}

func TestJobAskingMoreProcessesThanTheAgentAllowsFails(t *testing.T) {
	f := newFixtureWith(t, twoCPUs, true, func(c *agent.Config) { c.Pids = 200 })
	dir := repo(t, `
- id: greedy
  image: monkeyci/busybox:latest
  pids: 201
  script: ["echo ran"]
- id: modest
  image: monkeyci/busybox:latest
  pids: 200
  script: ["echo ran"]
`, map[string]string{})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil {
		t.Fatal(err)
	}
	greedy := jobResult(t, out, "greedy")
	if greedy.Result != events.Error || !strings.Contains(greedy.Message, "asks for 201 processes (pids), and this agent allows at most 200") {
		t.Errorf("greedy: %+v", greedy)
	}
	if strings.Contains(rec.out("greedy"), "ran") {
		t.Error("the greedy job ran")
	}
	if modest := jobResult(t, out, "modest"); modest.Result != events.Success {
		t.Errorf("modest: %+v", modest)
	}
}

// A network of the build's name that nobody uses (left by a killed run of
// the build under another agent id) is made again; one still in use fails
// the build, saying so.
func TestBuildNetworkLeftBehind(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	ctx := context.Background()
	dir := repo(t, "id: a\nimage: monkeyci/busybox:latest\nscript: [\"true\"]\n", map[string]string{})
	other := map[string]string{agent.LabelAgent: f.agent + "-other"}
	t.Cleanup(func() {
		ids, _ := f.engine.ListContainers(ctx, other)
		for _, id := range ids {
			_ = f.engine.Remove(ctx, id)
		}
		nets, _ := f.engine.ListNetworks(ctx, other)
		for _, n := range nets {
			_ = f.engine.RemoveNetwork(ctx, n)
		}
	})
	if err := f.engine.CreateNetwork(ctx, "monkeyci-stale-network", other); err != nil {
		t.Fatal(err)
	}
	if out, err := f.runner.Run(ctx, agent.BuildSpec{ID: "stale", Source: dir}, newRecorder()); err != nil || out.Result != events.Success {
		t.Fatalf("over a stale network: %+v %v", out, err)
	}

	if err := f.engine.CreateNetwork(ctx, "monkeyci-taken-network", other); err != nil {
		t.Fatal(err)
	}
	id, err := f.engine.Create(ctx, agent.ContainerSpec{Image: busybox, Cmd: []string{"sleep", "600"}, Labels: other, Network: "monkeyci-taken-network"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.engine.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	out, err := f.runner.Run(ctx, agent.BuildSpec{ID: "taken", Source: dir}, newRecorder())
	if out.Result != events.Error || err == nil || !strings.Contains(err.Error(), "the build's network") {
		t.Errorf("over a network in use: %+v %v, want an error about the build's network", out, err)
	}
}
