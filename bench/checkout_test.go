package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

const (
	checkoutRounds = 5
	// The limits, against `git clone --depth 2` of the same
	// repository by the git program over the git protocol.
	checkoutFreshLimit = 1.5
	checkoutNextLimit  = 0.3
)

// BenchmarkCheckout builds a 150 MB, 11,000-file repository (the Go
// toolchain's src tree, in two commits) served over the git protocol by
// git's own daemon, and times each build from its start to its first
// job's first command: the first build on a fresh agent, and the next
// build, of a new commit, on the same agent. The floor is `git clone
// --depth 2` of the same repository, side by side.
func BenchmarkCheckout(b *testing.B) {
	dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	repo := goSourceRepo(b)
	url := gittest.Daemon(b, filepath.Dir(repo)) + "/" + filepath.Base(repo)
	co := startBenchCoordinator(b, false)
	admin := co.adminClient(b)

	var floor, fresh, next []time.Duration
	// Each build's events after its start, by its time to the first
	// command: the median builds' are logged.
	timelines := map[time.Duration]string{}
	timed := func(d time.Duration, timeline string) time.Duration { timelines[d] = timeline; return d }
	for round := range checkoutRounds {
		syscall.Sync()
		floor = append(floor, gitClone(b, url))
		// A fresh agent: its state dir (and so its mirrors) new.
		slot := fmt.Sprintf("checkout-%d", round)
		startBenchAgent(b, co, "bench-"+slot, filepath.Join(b.TempDir(), "agent"), "--labels", "slot="+slot)
		syscall.Sync()
		fresh = append(fresh, timed(toFirstCommand(b, admin, url, slot)))
		commitChange(b, repo, round)
		syscall.Sync()
		next = append(next, timed(toFirstCommand(b, admin, url, slot)))
	}
	b.ReportMetric(ms(median(floor)), "git-clone-ms")
	reportAtMost(b, floor, "git clone --depth 2; ours to the first command",
		figure{"fresh-agent", fresh, checkoutFreshLimit}, figure{"next-build", next, checkoutNextLimit})
	b.Logf("checkout of a 150 MB repository: git clone %v, first build on a fresh agent %v, next build %v", floor, fresh, next)
	b.Logf("the median first build, after its start: %s", timelines[median(fresh)])
	b.Logf("the median next build, after its start: %s", timelines[median(next)])
}

// goSourceRepo makes a repository of the Go toolchain's src tree in two
// commits, the first with a build file of one job, packed as a forge's
// repositories are.
func goSourceRepo(b *testing.B) string {
	b.Helper()
	src := filepath.Join(runtime.GOROOT(), "src")
	if _, err := os.Stat(src); err != nil {
		b.Fatalf("the Go toolchain's src tree: %v", err)
	}
	repo := filepath.Join(b.TempDir(), "go.git")
	if err := os.MkdirAll(filepath.Join(repo, ".monkeyci"), 0o755); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", src+"/.", repo).CombinedOutput(); err != nil {
		b.Fatalf("copying %s: %v\n%s", src, err, out)
	}
	build := fmt.Sprintf("id: first\nimage: %s\nscript: [\"echo started\"]\n", busybox)
	if err := os.WriteFile(filepath.Join(repo, ".monkeyci", "build.yaml"), []byte(build), 0o644); err != nil {
		b.Fatal(err)
	}
	gitRun(b, repo, "init", "-q", "-b", "main")
	gitRun(b, repo, "add", "-A")
	gitRun(b, repo, "commit", "-q", "-m", "the Go tree")
	commitChange(b, repo, -1)
	gitRun(b, repo, "gc", "-q")
	return repo
}

// commitChange commits a small change to repo.
func commitChange(b *testing.B, repo string, n int) {
	b.Helper()
	f, err := os.OpenFile(filepath.Join(repo, "CHANGES.bench"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(f, "change %d\n", n)
	f.Close()
	gitRun(b, repo, "add", "CHANGES.bench")
	gitRun(b, repo, "commit", "-q", "-m", fmt.Sprintf("change %d", n))
}

func gitRun(b *testing.B, dir string, args ...string) {
	b.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Bench", "-c", "user.email=bench@example.com", "-c", "gc.auto=0"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// gitClone times `git clone --depth 2` of url into a new folder, kept
// until the benchmark ends: on this machine's disk a 150 MB tree just
// removed slows the writes after it for seconds (measured: a clone after
// removing another took 4.7 s, against 1.6 s), which would weigh on the
// build timed next.
func gitClone(b *testing.B, url string) time.Duration {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "clone")
	start := time.Now()
	if out, err := exec.Command("git", "clone", "-q", "--depth", "2", url, dir).CombinedOutput(); err != nil {
		b.Fatalf("git clone: %v\n%s", err, out)
	}
	return time.Since(start)
}

// toFirstCommand builds url's main on the agent of slot and returns the
// time from the build's start to its first job's first command, and the
// times of its events after its start.
func toFirstCommand(b *testing.B, admin fleet.AdminClient, url, slot string) (time.Duration, string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	info, err := admin.Trigger(ctx, &fleet.TriggerRequest{Url: url, Branch: "main", Labels: map[string]string{"slot": slot}})
	if err != nil {
		b.Fatal(err)
	}
	d := waitBuildDetail(ctx, b, admin, info.GetId())
	if r := d.GetBuild().GetResult(); r != string(events.Success) {
		b.Fatalf("build %s: %s %s", info.GetId(), r, d.GetBuild().GetMessage())
	}
	var started, first time.Time
	var timeline []string
	for _, se := range d.GetEvents() {
		var e events.Event
		if json.Unmarshal(se.GetEvent(), &e) != nil {
			continue
		}
		if !started.IsZero() {
			timeline = append(timeline, fmt.Sprintf("%s +%d ms", e.Type, e.Time.Sub(started).Milliseconds()))
		}
		switch {
		case e.Type == events.BuildStart && started.IsZero():
			started = e.Time
		case e.Type == events.CommandStart && first.IsZero():
			first = e.Time
		}
	}
	if started.IsZero() || first.IsZero() {
		b.Fatalf("build %s: no build/start or command/start", info.GetId())
	}
	return first.Sub(started), strings.Join(timeline, ", ")
}
