package agent_test

import (
	"context"
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

	mirrors, ok := source.NewMirrors(t.TempDir(), hclog.NewNullLogger())
	if !ok {
		t.Fatal("no git program on PATH")
	}
	dir := filepath.Join(t.TempDir(), "src")
	if _, err := mirrors.Fetch(context.Background(), source.Source{URL: src, Branch: "main"}, dir); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir, Snapshot: true}, rec)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%v %+v\n%s", err, out, rec.out("describe"))
	}
	want := git("describe", "--tags") + "\n" + git("log", "-1", "--format=%H %an %s") + "\n0\nchanged\n"
	if got := rec.out("describe"); got != want {
		t.Errorf("the job printed\n%s\nwant\n%s", got, want)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a.txt")); err != nil || string(b) != "one" {
		t.Errorf("the snapshot's a.txt after the build: %q %v, want it untouched", b, err)
	}
}
