package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"

	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
)

// A build of a local git repository, triggered by path, shows its branch
// and commit in `builds ls` and `builds show`; one of a directory that is
// no repository shows none. Each build is then named by the start of its
// id, and a start that both share is refused naming them.
func TestALocalBuildShowsItsCommitAndBranchAndIsNamedByAPrefix(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	yaml := "id: hi\nimage: monkeyci/busybox:latest\nscript: ['echo local build']\n"
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": yaml})
	r, err := git.PlainOpen(repo)
	if err != nil {
		t.Fatal(err)
	}
	head, err := r.Head()
	if err != nil {
		t.Fatal(err)
	}
	branch := head.Name().Short()
	plainDir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(plainDir, ".monkeyci"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plainDir, ".monkeyci", "build.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startUp(t)
	client := func(args ...string) (int, string, string) {
		return cli(t, append(args, "--server", p.server, "--ca", p.ca, "--token", p.token)...)
	}
	trigger := func(path string) string {
		code, out, errOut := client("trigger", "--repo", path, "--wait")
		if code != 0 {
			t.Fatalf("trigger --repo %s --wait: exit %d\n%s\n%s", path, code, out, errOut)
		}
		return strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	}
	fromRepo, fromDir := trigger(repo), trigger(plainDir)

	common := 0
	for common < len(fromRepo) && fromRepo[common] == fromDir[common] {
		common++
	}
	field := func(show, name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `:\s+(\S+)$`).FindStringSubmatch(show)
		if m == nil {
			return ""
		}
		return m[1]
	}
	code, show, errOut := client("builds", "show", fromRepo[:common+1])
	if code != 0 || field(show, "id") != fromRepo || field(show, "branch") != branch || field(show, "commit") != commit {
		t.Errorf("builds show %s: exit %d %s\n%s; want build %s of %s at %s", fromRepo[:common+1], code, errOut, show, fromRepo, branch, commit)
	}
	code, show, errOut = client("builds", "show", fromDir[:common+1])
	if code != 0 || field(show, "id") != fromDir || field(show, "branch") != "-" || field(show, "commit") != "-" {
		t.Errorf("builds show %s: exit %d %s\n%s; want build %s with no branch nor commit", fromDir[:common+1], code, errOut, show, fromDir)
	}
	code, ls, _ := client("builds", "ls")
	if code != 0 || !regexp.MustCompile(fromRepo+`\s+\S+\s+`+regexp.QuoteMeta(branch)+`\s+`+commit[:12]).MatchString(ls) {
		t.Errorf("builds ls does not show %s's branch %s and commit %s:\n%s", fromRepo, branch, commit[:12], ls)
	}
	code, logs, errOut := client("logs", fromRepo[:common+1])
	if code != 0 || !strings.Contains(logs, "local build") {
		t.Errorf("logs %s: exit %d %s\n%s", fromRepo[:common+1], code, errOut, logs)
	}
	code, out, errOut := client("builds", "show", fromRepo[:common])
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, fromRepo) || !strings.Contains(errOut, fromDir) {
		t.Errorf("builds show %s (both builds' start): exit %d %q %q; want one line naming both", fromRepo[:common], code, out, errOut)
	}
	code, _, errOut = client("builds", "retry", "f"+fromRepo[:common+1])
	if code != 1 || !strings.Contains(errOut, "no build f"+fromRepo[:common+1]) {
		t.Errorf("builds retry of no build: exit %d %q", code, errOut)
	}
}
