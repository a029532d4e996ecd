package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator/tlsca"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/forge"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/loopback"
	"github.com/monkeyci/monkeyci/internal/pgtest"
	"github.com/monkeyci/monkeyci/internal/s3test"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Chaos tests of several coordinators on one PostgreSQL: real processes,
// real signals.

// pair is two coordinators sharing a database, a blob store (a real S3
// server), a CA, the tokens and the master key, as docs/operations.md sets
// them up.
type pair struct {
	pg    *pgtest.Server
	dsn   string
	blobs string
	procs [2]*coordinatorProcess
	dirs  [2]string
	addrs [2]string
}

const leaderTTL = 2 * time.Second

func startPair(t *testing.T) *pair {
	t.Helper()
	pg := pgtest.Start(t)
	s3 := s3test.Start(t)
	s3.Credit(t)
	p := &pair{pg: pg, dsn: pg.DSN, blobs: s3.URL()}
	for i := range p.procs {
		p.dirs[i], p.addrs[i] = t.TempDir(), loopback.FreeAddr(t)
		if i > 0 {
			shareSecrets(t, p.dirs[0], p.dirs[i])
		}
		p.procs[i] = p.start(t, i)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("coordinator %d said:\n%s", i, p.procs[i].out)
			}
		})
		if i == 0 {
			wait.Within(t, time.Minute, "the first coordinator to lead", func() bool { return p.role(t, 0) == "leader" })
		}
	}
	return p
}

func (p *pair) start(t *testing.T, i int) *coordinatorProcess {
	return startCoordinatorAt(t, p.dirs[i], 20*time.Second, p.addrs[i], "--database", p.dsn, "--blobs", p.blobs,
		"--leader-ttl", leaderTTL.String(), "--log-level", "info")
}

// shareSecrets gives the coordinator of dir to what the one of from made
// on its first start: its CA, the tokens and the master key.
func shareSecrets(t *testing.T, from, to string) {
	t.Helper()
	for _, f := range []string{filepath.Join("tls", tlsca.CAFileName), filepath.Join("tls", tlsca.CAKeyFileName), "tokens.json", "master.key"} {
		data, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(to, f)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// role is what coordinator i's /healthz says it is ("" when it does not
// answer).
func (p *pair) role(t *testing.T, i int) string {
	resp, err := http.Get("http://" + p.procs[i].http + "/healthz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var h struct{ Role string }
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return h.Role
}

// endsAsFirstAttempt waits for the build to end and fails the test unless
// it ended in success as attempt 1, saying its events and what both
// coordinators said.
func (p *pair) endsAsFirstAttempt(t *testing.T, api fleet.AdminClient, id string) *fleet.BuildInfo {
	t.Helper()
	ended := waitBuild(t, api, id, 2*time.Minute, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	if ended.GetResult() != "success" || ended.GetAttempt() != 1 {
		detail, _ := api.GetBuild(context.Background(), &fleet.GetBuildRequest{Id: id})
		t.Fatalf("build ended %s at attempt %d (%s), want success at attempt 1; events:\n%v\ncoordinators said:\n%s\n%s",
			ended.GetResult(), ended.GetAttempt(), ended.GetMessage(), detail.GetEvents(), p.procs[0].out, p.procs[1].out)
	}
	return ended
}

// startPairAgent starts an agent given both coordinators' addresses.
func startPairAgent(t *testing.T, p *pair, name string) *agentProcess {
	t.Helper()
	c := p.procs[0]
	a := &agentProcess{out: &syncbuf.Buffer{}, done: make(chan error, 1)}
	a.cmd = exec.Command(testbinary.Path(t), "agent", "--coordinator", strings.Join(p.addrs[:], ","), "--ca", c.ca, "--join-token", c.join,
		"--name", name, "--cpus", "2", "--memory", "8g", "--state-dir", t.TempDir(), "--log-level", "info")
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.done <- a.cmd.Wait() }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Kill()
		<-a.done
		dockertest.Cleanup(t, map[string]string{agent.LabelAgent: name})
		if t.Failed() {
			t.Logf("agent %s said:\n%s", name, a.out)
		}
	})
	return a
}

// The leader killed in the middle of a build: the standby leads within
// 5 s, the agents find it, and the build ends as attempt 1 with its log
// whole and no event stored twice.
func TestChaosLeaderKilledTheStandbyTakesOverMidBuild(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	p := startPair(t)
	for _, name := range []string{"ha-a1", "ha-a2"} {
		startPairAgent(t, p, name)
	}
	api := p.procs[0].adminClient(t)
	repo, commit := gittest.Repo(t, talking(80))
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	waitBuild(t, api, b.GetId(), time.Minute, "running", func(b *fleet.BuildInfo) bool { return b.GetState() == "running" })
	waitLog(t, api, b.GetId(), "talk", "line 5\n")

	if err := p.procs[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = p.procs[0].cmd.Wait()
	wait.Within(t, 30*time.Second, "the standby to lead", func() bool { return p.role(t, 1) == "leader" })
	took := time.Since(killed)
	t.Logf("the standby led %s after the leader was killed", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("want within 5s")
	}

	api = p.procs[1].adminClient(t)
	p.endsAsFirstAttempt(t, api, b.GetId())
	checkWholeRun(t, api, b.GetId(), 80)
	// coordinators ls tells the killed one as gone, not as a standby.
	wait.For(t, "coordinators ls to tell the killed leader gone", func() bool {
		_, table, _ := cli(t, "coordinators", "ls", "--server", p.addrs[1], "--ca", p.procs[1].ca, "--token", p.procs[1].admin)
		for _, l := range strings.Split(table, "\n") {
			if strings.Contains(l, p.addrs[0]) {
				return strings.Contains(l, " gone ")
			}
		}
		return false
	})
}

// The leader killed just before a job saves its artifact: the save waits
// for the standby to lead rather than fail the job (it was refused by the
// standby, which holds no leases, and the build failed), and the job after
// it restores the artifact.
func TestChaosAnArtifactSavedThroughAFailover(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	p := startPair(t)
	startPairAgent(t, p, "ha-art-a1")
	api := p.procs[0].adminClient(t)
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": `
- id: make
  image: monkeyci/busybox:latest
  save-artifacts: [{id: bin, path: out}]
  script:
    - mkdir -p out && echo made-before-the-failover > out/app
    - echo ready
    - sleep 1
- id: use
  image: monkeyci/busybox:latest
  dependencies: [make]
  restore-artifacts: [{id: bin, path: out}]
  script:
    - cat out/app
`})
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, api, b.GetId(), "make", "ready\n")
	// The save comes a second after, within the role's lease (2 s): no
	// coordinator leads then.
	if err := p.procs[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.procs[0].cmd.Wait()
	api = p.procs[1].adminClient(t)
	p.endsAsFirstAttempt(t, api, b.GetId())
	if got := readLog(t, api, b.GetId(), "use"); got != "made-before-the-failover\n" {
		t.Errorf("the restored artifact says %q", got)
	}
}

// The leader paused (SIGSTOP) past its role's lease: the standby takes
// over, the agents leave the paused one for it; woken (SIGCONT), the old
// leader finds it no longer leads and changes nothing: the build ends
// successfully as attempt 1, its log whole.
func TestChaosPausedLeaderWakesUpAsAStandbyAndChangesNothing(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	p := startPair(t)
	startPairAgent(t, p, "ha-paused-a1")
	api := p.procs[0].adminClient(t)
	const lines = 200
	repo, commit := gittest.Repo(t, talking(lines))
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	waitBuild(t, api, b.GetId(), time.Minute, "running", func(b *fleet.BuildInfo) bool { return b.GetState() == "running" })
	waitLog(t, api, b.GetId(), "talk", "line 5\n")

	old := p.procs[0].cmd.Process
	if err := old.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	wait.Within(t, 30*time.Second, "the standby to lead", func() bool { return p.role(t, 1) == "leader" })
	api = p.procs[1].adminClient(t)
	// Well past the old leader's lease (and its agents' leases' checks).
	time.Sleep(3 * leaderTTL)
	if err := old.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	wait.Within(t, 30*time.Second, "the old leader to stand by", func() bool { return p.role(t, 0) == "standby" })

	if ended := p.endsAsFirstAttempt(t, api, b.GetId()); ended.GetAgent() == "" {
		t.Fatalf("build ended with no agent: %+v", ended)
	}
	checkWholeRun(t, api, b.GetId(), lines)
	if !strings.Contains(p.procs[0].out.String(), "no longer the leader") {
		t.Errorf("the old leader did not say it stepped down:\n%s", p.procs[0].out)
	}
}

// PostgreSQL restarted in the middle of a build: the build ends
// successfully, and the coordinators lead and stand by again without a
// restart of their own.
func TestChaosPostgreSQLRestartedMidBuild(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	p := startPair(t)
	startPairAgent(t, p, "ha-pg-a1")
	api := p.procs[0].adminClient(t)
	const lines = 100
	repo, commit := gittest.Repo(t, talking(lines))
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	waitBuild(t, api, b.GetId(), time.Minute, "running", func(b *fleet.BuildInfo) bool { return b.GetState() == "running" })
	waitLog(t, api, b.GetId(), "talk", "line 5\n")

	p.pg.Restart()

	wait.Within(t, time.Minute, "a coordinator to lead again", func() bool {
		return p.role(t, 0) == "leader" || p.role(t, 1) == "leader"
	})
	p.endsAsFirstAttempt(t, api, b.GetId())
	checkWholeRun(t, api, b.GetId(), lines)
	roles := []string{p.role(t, 0), p.role(t, 1)}
	if !slices.Contains(roles, "leader") || !slices.Contains(roles, "standby") {
		t.Errorf("roles after the restart: %v, want a leader and a standby", roles)
	}
}

// Webhooks sent to both coordinators, each delivery to each, while the
// leader is killed: every delivery queues exactly one build.
func TestChaosWebhooksThroughAFailoverQueueOneBuildEach(t *testing.T) {
	p := startPair(t)
	const secret = "failover-hook-secret"
	api := p.procs[0].adminClient(t)
	if _, err := api.AddRepo(context.Background(), &fleet.Repo{Name: "acme/app", Url: "/srv/acme/app", WebhookSecret: secret}); err != nil {
		t.Fatal(err)
	}
	const deliveries, killAt = 60, 20
	client := &http.Client{Timeout: 10 * time.Second}
	answered := make([]atomic.Bool, deliveries)
	for i := range deliveries {
		if i == killAt {
			if err := p.procs[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		commit := fmt.Sprintf("%040x", i+1)
		var wg sync.WaitGroup
		for _, c := range p.procs {
			wg.Go(func() {
				body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git"},"sender":{"login":"chaos"}}`, commit))
				req, _ := http.NewRequest(http.MethodPost, "http://"+c.http+"/webhooks/github", bytes.NewReader(body))
				req.Header.Set("X-GitHub-Event", "push")
				req.Header.Set("X-GitHub-Delivery", fmt.Sprint("d-", i))
				forge.Sign(forge.GitHub, req.Header, body, secret)
				resp, err := client.Do(req)
				if err != nil {
					return // the killed one
				}
				defer resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					answered[i].Store(true)
				} else {
					msg, _ := io.ReadAll(resp.Body)
					t.Errorf("delivery %d: %s: %s", i, resp.Status, msg)
				}
			})
		}
		wg.Wait()
		time.Sleep(50 * time.Millisecond)
	}
	for i := range answered {
		if !answered[i].Load() {
			t.Errorf("delivery %d was answered by no coordinator", i)
		}
	}
	api = p.procs[1].adminClient(t)
	list, err := api.ListBuilds(context.Background(), &fleet.ListBuildsRequest{Repo: "acme/app"})
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, b := range list.GetBuilds() {
		per[b.GetCommit()]++
	}
	for i := range deliveries {
		if n := per[fmt.Sprintf("%040x", i+1)]; n != 1 {
			t.Errorf("delivery %d queued %d builds, want 1", i, n)
		}
	}
	if len(list.GetBuilds()) != deliveries {
		t.Errorf("%d builds for %d deliveries", len(list.GetBuilds()), deliveries)
	}
}

// A standby serves the admin API: a build triggered there runs on the
// leader's agent; its agents are listed as the leader sees them; its log
// is followed from the standby to the build's end; and it is canceled
// there, by way of the leader.
func TestAStandbyServesTheAdminAPI(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	p := startPair(t)
	startPairAgent(t, p, "ha-standby-a1")
	standby := p.procs[1].adminClient(t)
	// coordinators ls, asked of the standby, once the standby has claimed
	// (or tried to) once: its row is written then.
	var listed []struct {
		Role, GRPC string
		Self       bool
		Term       int64
	}
	var code int
	var out, errOut string
	var err error
	if !wait.Poll(time.Minute, func() bool {
		code, out, errOut = cli(t, "coordinators", "ls", "--server", p.addrs[1], "--ca", p.procs[1].ca, "--token", p.procs[1].admin, "-o", "json")
		listed = nil
		err = json.Unmarshal([]byte(out), &listed)
		return code == 0 && err == nil && len(listed) == 2
	}) {
		t.Fatalf("coordinators ls: exit %d, %q %q (%v)", code, out, errOut, err)
	}
	for i, c := range listed {
		leads := c.GRPC == p.addrs[0]
		if c.GRPC != p.addrs[i] || leads != (c.Role == "leader") || c.Self != (i == 1) || leads != (c.Term == 1) {
			t.Errorf("coordinators ls: %+v, want the first to lead at term 1 and the second to stand by and answer", listed)
		}
	}
	if _, table, _ := cli(t, "coordinators", "ls", "--server", p.addrs[1], "--ca", p.procs[1].ca, "--token", p.procs[1].admin); !strings.Contains(table, "leader (term 1)") || !strings.Contains(table, "standby") {
		t.Errorf("coordinators ls:\n%s", table)
	}
	wait.Within(t, time.Minute, "the agent to be listed ready on the standby", func() bool {
		list, err := standby.ListAgents(context.Background(), &fleet.ListAgentsRequest{})
		return err == nil && len(list.GetAgents()) == 1 && list.GetAgents()[0].GetState() == "ready"
	})
	repo, commit := gittest.Repo(t, talking(600))
	b, err := standby.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, standby, b.GetId(), "talk", "line 3\n")
	logs, err := standby.Logs(context.Background(), &fleet.LogsRequest{Build: b.GetId(), Job: "talk", Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	followed := make(chan error, 1)
	go func() {
		for {
			if _, err := logs.Recv(); err != nil {
				followed <- err
				return
			}
		}
	}()
	if _, err := standby.CancelBuild(context.Background(), &fleet.BuildRef{Id: b.GetId()}); err != nil {
		t.Fatal(err)
	}
	ended := waitBuild(t, standby, b.GetId(), time.Minute, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	if ended.GetResult() != string(events.Canceled) {
		t.Errorf("build ended %s (%s), want canceled", ended.GetResult(), ended.GetMessage())
	}
	select {
	case err := <-followed:
		if err != io.EOF {
			t.Errorf("following the log on the standby ended with %v, want its end", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("following the log on the standby did not end with the build")
	}
	// The ended attempt's log, archived by the leader into the shared blob
	// store, read through the standby.
	wait.For(t, "the ended build's log to be read whole through the standby", func() bool {
		return strings.Contains(readLog(t, standby, b.GetId(), "talk"), "line 3\n")
	})
	// The standby's dashboard: signed in with the admin token, the build's
	// page says it was canceled.
	jar, _ := cookiejar.New(nil)
	web := &http.Client{Jar: jar, Timeout: time.Minute}
	resp, err := web.PostForm("http://"+p.procs[1].http+"/login", url.Values{"token": {p.procs[1].admin}, "next": {"/builds/" + b.GetId()}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), b.GetId()) || !strings.Contains(string(page), "canceled") {
		t.Errorf("the standby's page of the build (%s) does not show it canceled:\n%.2000s", resp.Status, page)
	}
}

// A coordinator on PostgreSQL with the data dir's own blob store says, as
// it starts, that coordinators sharing the database must share one: else
// the logs of builds another one ended are not found here (a standby's
// `logs` printed nothing).
func TestACoordinatorOnPostgreSQLWithItsOwnBlobStoreWarns(t *testing.T) {
	pg := pgtest.Start(t)
	c := startCoordinatorAt(t, t.TempDir(), 20*time.Second, loopback.FreeAddr(t), "--database", pg.DSN)
	wait.Within(t, time.Minute, "the warning", func() bool {
		return strings.Contains(c.out.String(), "coordinators sharing the database must share a blob store too (--blobs s3://... or oci://...)")
	})
	s3 := s3test.Start(t)
	s3.Credit(t)
	shared := startCoordinatorAt(t, t.TempDir(), 20*time.Second, loopback.FreeAddr(t), "--database", pg.NewDatabase(t), "--blobs", s3.URL())
	if strings.Contains(shared.out.String(), "must share a blob store") {
		t.Errorf("warned with --blobs given:\n%s", shared.out)
	}
}
