package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/loopback"
	"github.com/monkeyci/monkeyci/internal/pgtest"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// The failover figure (issue 18): two coordinator processes on one
// PostgreSQL (fsync on) with the default --leader-ttl, and an agent process
// given both addresses. The leader is killed (SIGKILL) and a build is
// triggered at once through the standby; measured is the time from the
// kill to that build's assignment by the new leader (its Started, the
// coordinators' clock, which is this machine's). The killed one is started
// again, stands by, and the next round kills the other: 5 rounds.
const (
	failoverRounds = 5
	failoverMax    = 5 * time.Second
)

var benchHTTPLine = regexp.MustCompile(`HTTPS? on (\S+)$`)

// haCoordinator is one of the pair: a process, restarted on its address.
type haCoordinator struct {
	dir, grpc, http string
	cmd             *exec.Cmd
	errOut          *syncbuf.Buffer
}

func (c *haCoordinator) start(b *testing.B, dsn string) {
	b.Helper()
	c.errOut = &syncbuf.Buffer{}
	c.cmd = exec.Command(testbinary.Path(b), "coordinator", "--tls=false", "--data-dir", c.dir, "--database", dsn,
		"--grpc-listen", c.grpc, "--http-listen", "127.0.0.1:0", "--join-token", "bench-join", "--admin-token", "bench-admin",
		"--log-level", "warn")
	c.cmd.Env = append(c.cmd.Environ(), "MONKEYCI_MASTER_KEY="+strings.Repeat("cd", 32))
	c.cmd.Stderr = c.errOut
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	cmd := c.cmd
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	for c.http = ""; c.http == "" && lines.Scan(); {
		if m := benchHTTPLine.FindStringSubmatch(lines.Text()); m != nil {
			c.http = m[1]
		}
	}
	if c.http == "" {
		b.Fatalf("the coordinator printed no HTTP address; stderr:\n%s", c.errOut)
	}
	go io.Copy(io.Discard, stdout)
}

func (c *haCoordinator) role() string {
	resp, err := http.Get("http://" + c.http + "/healthz")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var h struct{ Role string }
	_ = json.NewDecoder(resp.Body).Decode(&h)
	return h.Role
}

func (c *haCoordinator) admin(b *testing.B) fleet.AdminClient {
	conn, err := grpc.NewClient(c.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(plainBearer("bench-admin")))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return fleet.NewAdminClient(conn)
}

func waitFor(b *testing.B, limit time.Duration, what string, ok func() bool) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			b.Fatalf("not %s within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func BenchmarkFailover(b *testing.B) {
	dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	pg := pgtest.StartWith(b, pgtest.Options{Durable: true})
	var pair [2]*haCoordinator
	for i := range pair {
		pair[i] = &haCoordinator{dir: b.TempDir(), grpc: loopback.FreeAddr(b)}
		pair[i].start(b, pg.DSN)
		if i == 0 {
			waitFor(b, time.Minute, "the first coordinator leading", func() bool { return pair[0].role() == "leader" })
		}
	}
	out := &syncbuf.Buffer{}
	ag := exec.Command(testbinary.Path(b), "agent", "--tls=false", "--coordinator", pair[0].grpc+","+pair[1].grpc,
		"--join-token", "bench-join", "--name", "bench-failover", "--cpus", "2", "--memory", "4g", "--state-dir", b.TempDir(), "--log-level", "warn")
	ag.Stdout, ag.Stderr = out, out
	if err := ag.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = ag.Process.Kill()
		_ = ag.Wait()
		dockertest.Cleanup(b, map[string]string{agent.LabelAgent: "bench-failover"})
	})
	repo, commit := gittest.Repo(b, map[string]string{".monkeyci/build.yaml": fmt.Sprintf("id: ok\nimage: %s\nscript: ['echo ok']\n", busybox)})
	ctx := context.Background()
	build := func(api fleet.AdminClient) *fleet.BuildInfo {
		info, err := api.Trigger(ctx, &fleet.TriggerRequest{Url: repo, Commit: commit})
		if err != nil {
			b.Fatal(err)
		}
		return info
	}
	ended := func(api fleet.AdminClient, id string) *fleet.BuildInfo {
		var got *fleet.BuildInfo
		waitFor(b, 2*time.Minute, "build "+id+" ended", func() bool {
			d, err := api.GetBuild(ctx, &fleet.GetBuildRequest{Id: id})
			got = d.GetBuild()
			return err == nil && got.GetState() == "ended"
		})
		if got.GetResult() != "success" {
			b.Fatalf("build %s ended %s: %s\nagent said:\n%s", id, got.GetResult(), got.GetMessage(), out)
		}
		return got
	}
	// A first build: the agent has joined and its image is warm.
	ended(pair[0].admin(b), build(pair[0].admin(b)).GetId())

	var took []time.Duration
	leader := 0
	for round := range failoverRounds {
		standby := pair[1-leader]
		api := standby.admin(b)
		if err := pair[leader].cmd.Process.Signal(syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		killed := time.Now()
		_ = pair[leader].cmd.Wait()
		info := build(api)
		got := ended(api, info.GetId())
		took = append(took, got.GetStarted().AsTime().Sub(killed))
		if standby.role() != "leader" {
			b.Fatalf("round %d: the standby does not lead", round)
		}
		pair[leader].start(b, pg.DSN)
		waitFor(b, time.Minute, "the killed one back as a standby", func() bool { return pair[leader].role() == "standby" })
		leader = 1 - leader
	}
	took = sorted(took)
	p50, worst := took[len(took)/2], took[len(took)-1]
	b.ReportMetric(ms(p50), "p50-failover-ms")
	b.ReportMetric(ms(worst), "max-failover-ms")
	b.Logf("failover: leader killed -> first assignment by the new leader: p50 %.0f ms, max %.0f ms (at most %.0f ms) %s; over %d failovers, --leader-ttl default",
		ms(p50), ms(worst), ms(failoverMax), verdictAtMost(worst, failoverMax), len(took))
}
