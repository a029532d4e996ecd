package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/docker"
	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/s3test"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

const (
	// cacheMB is the cache restored: 200 files of 1 MB each, random.
	cacheMB = 200
	// A round's ratio moves by some 15% with this disk; the limit is 5%
	// away: 41 rounds put the median within about 2% of the true ratio.
	// Odd: the median is a round's own.
	cacheRuns = 41
	// The limits: through S3 on a fresh agent, and from the
	// agent's own tier, against restoring the same archive from local
	// disk with no coordinator at all.
	cacheS3Limit   = 1.3
	cacheTierLimit = 1.05
)

// cacheBuild fills its cache once; every later build restores it.
var cacheBuild = fmt.Sprintf(`
id: deps
image: %s
caches: [{id: deps, path: .deps}]
script:
  - 'if [ ! -f .deps/done ]; then mkdir -p .deps && i=0 && while [ $i -lt %d ]; do head -c 1048576 /dev/urandom > .deps/f$i; i=$((i+1)); done && touch .deps/done; fi'
`, busybox, cacheMB)

// BenchmarkCacheRestore restores a 200 MB cache three ways, in turn, in
// rounds:
// on a fresh agent from the fleet's store in an S3 server (versitygw, a
// process on loopback), from the agent's own tier (its digest matches),
// and, the floor, from local disk by an agent with no coordinator. Each
// figure is the restore's own time, as job/start reports it.
func BenchmarkCacheRestore(b *testing.B) {
	e := dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	s3 := s3test.Start(b)
	co := startBenchCoordinatorWith(b, false, []string{"--blobs", s3.URL()},
		[]string{"AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey})
	admin := co.adminClient(b)
	repo, commit := gittest.Repo(b, map[string]string{".monkeyci/build.yaml": cacheBuild})

	// Two agents side by side, each taking the builds labelled for it: one
	// keeps the cache in its tier, the other forgets it before each build.
	tierDir, freshDir := filepath.Join(b.TempDir(), "agent"), filepath.Join(b.TempDir(), "agent")
	startBenchAgent(b, co, "bench-cache-tier", tierDir, "--labels", "slot=tier")
	startBenchAgent(b, co, "bench-cache-fresh", freshDir, "--labels", "slot=fresh")
	if c := cacheRun(b, admin, repo, commit, "tier"); c.From != "" {
		b.Fatalf("the first build found a cache: %+v", c)
	}
	archive := tierArchive(b, filepath.Join(tierDir, "agent"))
	// s3CPU is the S3 server's CPU time in each build on the fresh agent:
	// it runs on this machine's two cores, beside the agent and Docker.
	var tier, fromS3, floor, s3CPU []time.Duration
	// Each round runs the three in another order, each once the build
	// before it is wholly gone (an agent removes a build's 200 MB volume
	// after it reports the build's end) and the disk's pending writes are
	// flushed: no way gets the quieter engine or disk.
	ways := []func(){
		func() { floor = append(floor, localRestore(b, archive)) },
		func() {
			c := cacheRun(b, admin, repo, commit, "tier")
			if c.From == "" || c.Fetched {
				b.Fatalf("a build on the agent that keeps the cache: %+v, want it from the agent's tier", c)
			}
			tier = append(tier, c.Took)
		},
		func() {
			if err := os.RemoveAll(filepath.Join(freshDir, "agent", "caches")); err != nil {
				b.Fatal(err)
			}
			_, before := processUsage(b, strconv.Itoa(s3.Pid))
			c := cacheRun(b, admin, repo, commit, "fresh")
			if !c.Fetched {
				b.Fatalf("a build on a fresh agent: %+v, want the cache fetched", c)
			}
			_, after := processUsage(b, strconv.Itoa(s3.Pid))
			fromS3 = append(fromS3, c.Took)
			s3CPU = append(s3CPU, after-before)
		},
	}
	for round := range cacheRuns {
		for i := range ways {
			settle(b, e, "bench-cache-tier", "bench-cache-fresh")
			ways[(round+i)%len(ways)]()
		}
	}
	b.ReportMetric(ms(median(floor)), "floor-ms")
	reportAtMost(b, floor, "untarring it from local disk",
		figure{"s3-fresh-agent", fromS3, cacheS3Limit}, figure{"agent-tier", tier, cacheTierLimit})
	b.Logf("cache restore of %d MB: through S3 %v, from the agent's tier %v, local disk (floor) %v; the S3 server's CPU time in each build through it %v (it shares this machine's cores)",
		cacheMB, fromS3, tier, floor, s3CPU)
}

// settle waits until the agents named have removed every build's volume,
// and flushes the disk's pending writes.
func settle(b *testing.B, e *docker.Engine, agents ...string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range agents {
		for {
			left, err := e.ListVolumes(ctx, map[string]string{engine.LabelAgent: name})
			if err != nil {
				b.Fatal(err)
			}
			if len(left) == 0 {
				break
			}
			select {
			case <-ctx.Done():
				b.Fatalf("agent %s left volumes %v", name, left)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	syscall.Sync()
}

// cacheRun runs one build of the cache repository and returns its job's
// cache as job/start reports it.
func cacheRun(b *testing.B, admin fleet.AdminClient, repo, commit, slot string) events.Cache {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	info, err := admin.Trigger(ctx, &fleet.TriggerRequest{Url: repo, Commit: commit, Branch: "main", Labels: map[string]string{"slot": slot}})
	if err != nil {
		b.Fatal(err)
	}
	detail := waitBuildDetail(ctx, b, admin, info.GetId())
	if r := detail.GetBuild().GetResult(); r != string(events.Success) {
		b.Fatalf("cache build %s: %s %s", info.GetId(), r, detail.GetBuild().GetMessage())
	}
	for _, se := range detail.GetEvents() {
		var e events.Event
		if err := json.Unmarshal(se.GetEvent(), &e); err == nil && e.Type == events.JobStart && len(e.Caches) == 1 {
			return e.Caches[0]
		}
	}
	b.Fatalf("build %s: no job/start with its cache", info.GetId())
	return events.Cache{}
}

// waitBuildDetail waits for the build to end and returns it with its
// events. It asks twice a second: every answer costs the coordinator (on
// the cores the build runs on) the build's events, and the figures are
// the agent's own, not the time this wait takes.
func waitBuildDetail(ctx context.Context, b *testing.B, admin fleet.AdminClient, id string) *fleet.BuildDetail {
	b.Helper()
	for {
		d, err := admin.GetBuild(ctx, &fleet.GetBuildRequest{Id: id})
		if err != nil {
			b.Fatal(err)
		}
		if d.GetBuild().GetState() == "ended" {
			return d
		}
		select {
		case <-ctx.Done():
			b.Fatalf("build %s did not end in time", id)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// tierArchive is the one cache archive in an agent's tier.
func tierArchive(b *testing.B, stateDir string) string {
	b.Helper()
	var found []string
	_ = filepath.WalkDir(filepath.Join(stateDir, "caches"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".tar") {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != 1 {
		b.Fatalf("the agent's tier holds %v, want one archive", found)
	}
	return found[0]
}

// localRestore restores archive from local disk with `monkeyci run` (a
// process of its own, as an agent is, but with no coordinator) and
// returns the restore's time, as its job/start event says.
func localRestore(b *testing.B, archive string) time.Duration {
	b.Helper()
	// Its own folder, removed at once: ten rounds of copies of a 200 MB
	// archive left until the end would weigh on the rounds after.
	tmp, err := os.MkdirTemp("", "bench-cache-local-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	src, state := filepath.Join(tmp, "src"), filepath.Join(tmp, "state")
	if err := os.MkdirAll(filepath.Join(src, ".monkeyci"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, ".monkeyci", "build.yaml"), []byte(cacheBuild), 0o644); err != nil {
		b.Fatal(err)
	}
	// Where `monkeyci run` keeps a cache of this directory (its repository
	// key) in the local scope.
	dst := agent.CacheFile(filepath.Join(state, "caches"), src, agent.LocalScope, "deps")
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := copyFile(archive, dst); err != nil {
		b.Fatal(err)
	}
	syscall.Sync() // the copy's writes are not the restore's to wait on
	cmd := exec.Command(testbinary.Path(b), "run", "--json", "--state-dir", state, "--cpus", "2", "--memory", "8g", "--log-level", "warn", src)
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("monkeyci run: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		var e events.Event
		if json.Unmarshal([]byte(line), &e) == nil && e.Type == events.JobStart && len(e.Caches) == 1 && e.Caches[0].From != "" {
			return e.Caches[0].Took
		}
	}
	b.Fatalf("monkeyci run restored no cache:\n%s", out)
	return 0
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

const (
	uploadAgents = 4
	uploadMB     = 256 // each: 1 GB in all
	uploadMaxMiB = 256 // the coordinator's peak RSS, at most
)

// BenchmarkArtifactUploadMemory has four agents upload 256 MB of artifacts
// each at once, through a coordinator whose store is its disk (every byte
// streams through it), and reads the coordinator's peak RSS.
func BenchmarkArtifactUploadMemory(b *testing.B) {
	dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	co := startBenchCoordinator(b, false)
	admin := co.adminClient(b)
	repo, commit := gittest.Repo(b, map[string]string{".monkeyci/build.yaml": fmt.Sprintf(`
id: make
image: %s
save-artifacts: [{id: out, path: out}]
script:
  - mkdir -p out && head -c %d /dev/urandom > out/blob
`, busybox, uploadMB<<20)})
	for i := range uploadAgents {
		startBenchAgent(b, co, fmt.Sprintf("bench-upload-%d", i), filepath.Join(b.TempDir(), "agent"),
			"--labels", fmt.Sprintf("slot=%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var ids []string
	start := time.Now()
	for i := range uploadAgents {
		info, err := admin.Trigger(ctx, &fleet.TriggerRequest{Url: repo, Commit: commit, Labels: map[string]string{"slot": fmt.Sprint(i)}})
		if err != nil {
			b.Fatal(err)
		}
		ids = append(ids, info.GetId())
	}
	var stored int64
	for _, id := range ids {
		d := waitBuildDetail(ctx, b, admin, id)
		if r := d.GetBuild().GetResult(); r != string(events.Success) {
			b.Fatalf("upload build %s: %s %s", id, r, d.GetBuild().GetMessage())
		}
		list, err := admin.ListArtifacts(ctx, &fleet.BuildRef{Id: id})
		if err != nil || len(list.GetArtifacts()) != 1 {
			b.Fatalf("build %s's artifacts: %v %v", id, list, err)
		}
		stored += list.GetArtifacts()[0].GetSize()
	}
	took := time.Since(start)
	peakKiB, cpu := co.usage(b)
	peakMiB := float64(peakKiB) / 1024
	b.ReportMetric(peakMiB, "coordinator-peak-MB")
	b.Logf("artifact upload: %d agents stored %.0f MB through the coordinator's disk store in %.1f s; coordinator CPU %.1f s, peak RSS %.0f MB (at most %d) %s",
		uploadAgents, float64(stored)/(1<<20), took.Seconds(), cpu.Seconds(), peakMiB, uploadMaxMiB, verdictAtMost(peakMiB, uploadMaxMiB))
}
