package agent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// A job sees the repository as git does: in a checkout fetched by way of
// the agent's mirror (a snapshot the workspace lies over, borrowing the
// mirror's objects), `git describe --tags` and `git log -1` print what the
// repository says; what the job writes stays in its workspace, never in
// the snapshot.
func TestAJobSeesTheRepositoryAsGitDoes(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dockertest.RequireImage(t, "monkeyci/git:latest")
	src := repo(t, `
id: describe
image: monkeyci/git:latest
script: ["git describe --tags", "git log -1 --format='%H %an %s'", "git status --porcelain | wc -l", "echo changed > a.txt && cat a.txt"]
`, map[string]string{"a.txt": "one"})
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", src, "-c", "user.name=Test", "-c", "user.email=t@example.com"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	git("add", "-A")
	git("commit", "-q", "-m", "first")
	git("tag", "-a", "v2.1.0", "-m", "release")
	git("commit", "-q", "--allow-empty", "-m", "second")

	mirrors := source.NewMirrors(t.TempDir(), hclog.NewNullLogger())
	if mirrors.Git == "" {
		t.Fatal("no git program on PATH")
	}
	// As a fleet agent builds: the source's folder is made empty, and the
	// fetch fills it while the build makes its containers. The second
	// build's fetch, from a warm mirror, is the quicker; its workspace is a
	// copy (a small tree's way), the first's an overlay.
	for round := range 2 {
		git("commit", "-q", "--allow-empty", "-m", fmt.Sprintf("round %d", round))
		dir, err := os.MkdirTemp(t.TempDir(), "src-")
		if err != nil {
			t.Fatal(err)
		}
		fetch := func(ctx context.Context) error {
			_, err := mirrors.Fetch(ctx, source.Source{URL: src, Branch: "main", Link: round == 0}, dir)
			return err
		}
		rec := newRecorder()
		out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir, Snapshot: round == 0, Fetch: fetch}, rec)
		if err != nil || out.Result != events.Success {
			t.Fatalf("round %d: %v %+v\n%s", round, err, out, rec.out("describe"))
		}
		want := git("describe", "--tags") + "\n" + git("log", "-1", "--format=%H %an %s") + "\n0\nchanged\n"
		if got := rec.out("describe"); got != want {
			t.Errorf("round %d: the job printed\n%s\nwant\n%s", round, got, want)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "a.txt")); err != nil || string(b) != "one" {
			t.Errorf("round %d: the checkout's a.txt after the build: %q %v, want it untouched", round, b, err)
		}
		if err := os.RemoveAll(dir); err != nil { // the build is over
			t.Fatal(err)
		}
	}
}

// A workspace over a snapshot is made while the fetch runs, with the
// script container, but mounted only when the script starts, once the
// fetch has ended: the job reads what the fetch wrote after both were
// made.
func TestAnOverlayWorkspaceIsMountedOnceTheFetchHasEnded(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	src := repo(t, "id: ls\nimage: monkeyci/busybox:latest\nscript: [\"cat a.txt\"]\n", map[string]string{"a.txt": "fetched"})
	dir, err := os.MkdirTemp(t.TempDir(), "src-")
	if err != nil {
		t.Fatal(err)
	}
	const id = "overlay-waits"
	fetching, release := make(chan struct{}), make(chan struct{})
	fetch := func(ctx context.Context) error {
		close(fetching)
		<-release
		return os.CopyFS(dir, os.DirFS(src))
	}
	done := make(chan error, 1)
	rec := newRecorder()
	go func() {
		out, err := f.runner.Run(context.Background(), agent.BuildSpec{ID: id, Source: dir, Snapshot: true, Fetch: fetch}, rec)
		if err == nil && out.Result != events.Success {
			err = fmt.Errorf("%+v", out)
		}
		done <- err
	}()
	<-fetching
	ctx := context.Background()
	var status string
	// The engine may list a container it is still making, which it does
	// not yet let one inspect: asked again until it does.
	wait.For(t, "the script container to be made while the fetch runs", func() bool {
		script, err := f.engine.ListContainers(ctx, map[string]string{agent.LabelBuild: id, agent.LabelRole: "script"})
		if err != nil || len(script) != 1 {
			return false
		}
		info, err := f.engine.Inspect(ctx, script[0])
		if err == nil {
			status = info.State.Status
		}
		return err == nil
	})
	close(release)
	if status != "created" {
		t.Errorf("while the fetch ran, the script container was %s, want only created", status)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := rec.out("ls"); got != "fetched" {
		t.Errorf("the job read %q", got)
	}
}

// A snapshot's checkout is released once no container of the build is
// left, before its end is told: the next build of the repository may take
// it while this one removes its volume and network.
func TestASnapshotIsReleasedOnceItsContainersAreGone(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	src := repo(t, "id: ls\nimage: monkeyci/busybox:latest\nscript: [\"cat a.txt\"]\n", map[string]string{"a.txt": "fetched"})
	dir, err := os.MkdirTemp(t.TempDir(), "src-")
	if err != nil {
		t.Fatal(err)
	}
	const id = "released"
	rec := newRecorder()
	var left []string
	var ended, released int
	spec := agent.BuildSpec{ID: id, Source: dir, Snapshot: true,
		Fetch: func(ctx context.Context) error { return os.CopyFS(dir, os.DirFS(src)) },
		Release: func() {
			released++
			ended = rec.count(events.BuildEnd)
			left, err = f.engine.ListContainers(context.Background(), map[string]string{agent.LabelBuild: id})
		},
	}
	out, runErr := f.runner.Run(context.Background(), spec, rec)
	if runErr != nil || out.Result != events.Success {
		t.Fatalf("%+v %v", out, runErr)
	}
	if released != 1 || err != nil || len(left) != 0 || ended != 0 {
		t.Errorf("released %d times, with containers %v (%v) left and %d build/end told, want once, none, none", released, left, err, ended)
	}
}
