package source

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/pipeline"
)

// history is a repository built commit by commit in a test.
type history struct {
	t    *testing.T
	path string
	repo *git.Repository
	when time.Time
}

func newHistory(t *testing.T) *history {
	t.Helper()
	h := &history{t: t, path: t.TempDir(), when: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
	var err error
	h.repo, err = git.PlainInitWithOptions(h.path, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.Main},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// commit writes files ("" removes one) and commits them, with parents
// when given (a merge).
func (h *history) commit(files map[string]string, parents ...plumbing.Hash) plumbing.Hash {
	h.t.Helper()
	w, err := h.repo.Worktree()
	if err != nil {
		h.t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(h.path, name)
		if content == "" {
			if _, err := w.Remove(name); err != nil {
				h.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			h.t.Fatal(err)
		}
		if _, err := w.Add(name); err != nil {
			h.t.Fatal(err)
		}
	}
	h.when = h.when.Add(time.Minute)
	c, err := w.Commit("commit", &git.CommitOptions{
		Author:  &object.Signature{Name: "Test", Email: "test@example.com", When: h.when},
		Parents: parents,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *history) checkout(branch string, create bool, from plumbing.Hash) {
	h.t.Helper()
	w, err := h.repo.Worktree()
	if err != nil {
		h.t.Fatal(err)
	}
	err = w.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName(branch), Create: create, Hash: from, Force: true})
	if err != nil {
		h.t.Fatal(err)
	}
}

// fetchFacts fetches src as an agent does and reads its facts.
func fetchFacts(t *testing.T, src Source) (pipeline.Facts, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ws")
	if _, err := Fetch(context.Background(), src, dir); err != nil {
		t.Fatal(err)
	}
	return factsBothWays(t, dir, src), dir
}

// factsBothWays reads dir's facts with the git program and with go-git:
// they must agree.
func factsBothWays(t *testing.T, dir string, src Source) pipeline.Facts {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	withGit, err := factsWithGit(context.Background(), git, dir, src)
	if err != nil {
		t.Fatal(err)
	}
	withGoGit, err := factsWithGoGit(context.Background(), dir, src)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(withGit, withGoGit) {
		t.Errorf("facts read with git %+v, with go-git %+v", withGit, withGoGit)
	}
	return withGit
}

func checkChanged(t *testing.T, f pipeline.Facts, want []string) {
	t.Helper()
	if !f.ChangedKnown || !slices.Equal(f.Changed, want) {
		t.Errorf("changed %q (known %v), want %q", f.Changed, f.ChangedKnown, want)
	}
}

func TestFactsOfFetchedCommits(t *testing.T) {
	needGit(t)
	h := newHistory(t)
	root := h.commit(map[string]string{"a.txt": "a", "docs/x.md": "x", "keep.txt": "k"})
	second := h.commit(map[string]string{"a.txt": "A", "docs/x.md": "", "src/b.go": "package b"})
	third := h.commit(map[string]string{"src/c/d.go": "package d"})

	t.Run("a commit and its parent", func(t *testing.T) {
		f, _ := fetchFacts(t, Source{URL: h.path, Commit: second.String()})
		checkChanged(t, f, []string{"a.txt", "docs/x.md", "src/b.go"})
		if f.Commit != second.String() || f.Branch != "" {
			t.Errorf("facts %+v: want commit %s, no branch asked", f, second)
		}
	})
	t.Run("a branch head, shallow", func(t *testing.T) {
		f, dir := fetchFacts(t, Source{URL: h.path, Branch: "main"})
		checkChanged(t, f, []string{"src/c/d.go"})
		if f.Commit != third.String() || f.Branch != "main" {
			t.Errorf("facts %+v: want commit %s on main", f, third)
		}
		// The parent came for the changes; nothing older did.
		if !isShallow(t, dir) || hasCommit(t, dir, root) || !hasCommit(t, dir, second) {
			t.Errorf("shallow %v, has root %v, has second %v: want only third and second", isShallow(t, dir), hasCommit(t, dir, root), hasCommit(t, dir, second))
		}
	})
	t.Run("the default branch is named", func(t *testing.T) {
		f, _ := fetchFacts(t, Source{URL: h.path})
		if f.Branch != "main" {
			t.Errorf("branch %q, want main", f.Branch)
		}
	})
	t.Run("a root commit: all its files", func(t *testing.T) {
		f, _ := fetchFacts(t, Source{URL: h.path, Commit: root.String()})
		checkChanged(t, f, []string{"a.txt", "docs/x.md", "keep.txt"})
	})
}

func TestFactsOfMerge(t *testing.T) {
	needGit(t)
	h := newHistory(t)
	base := h.commit(map[string]string{"a.txt": "a"})
	h.checkout("feature", true, base)
	feat := h.commit(map[string]string{"feat.txt": "f", "a.txt": "changed on feature"})
	h.checkout("main", false, plumbing.ZeroHash)
	onMain := h.commit(map[string]string{"main.txt": "m"})
	// Merge feature into main: the merge brings feat.txt and feature's a.txt.
	merge := h.commit(map[string]string{"feat.txt": "f", "a.txt": "changed on feature"}, onMain, feat)

	f, _ := fetchFacts(t, Source{URL: h.path, Branch: "main"})
	if f.Commit != merge.String() {
		t.Fatalf("commit %s, want the merge %s", f.Commit, merge)
	}
	// Relative to the first parent (main before the merge): what the merge
	// brought, not what main had done on its own.
	checkChanged(t, f, []string{"a.txt", "feat.txt"})
}

func TestFactsOfWithoutParentAreUnknown(t *testing.T) {
	needGit(t)
	h := newHistory(t)
	h.commit(map[string]string{"a.txt": "a"})
	head := h.commit(map[string]string{"b.txt": "b"})
	// A clone at depth 1 (not Fetch's): the parent is missing.
	dir := t.TempDir()
	if _, err := git.PlainClone(dir, false, &git.CloneOptions{URL: h.path, Depth: 1}); err != nil {
		t.Fatal(err)
	}
	f := factsBothWays(t, dir, Source{Tag: "v1"})
	if f.ChangedKnown || f.Changed != nil {
		t.Errorf("changed %q known %v, want unknown", f.Changed, f.ChangedKnown)
	}
	if f.Commit != head.String() || f.Tag != "v1" || f.Branch != "" {
		t.Errorf("facts %+v: want commit %s, tag v1, no branch (a tag build)", f, head)
	}
	if _, ok := f.Params()["changed"]; ok {
		t.Error("unknown changes given as a parameter")
	}
}

func TestWorkingTreeFacts(t *testing.T) {
	h := newHistory(t)
	h.commit(map[string]string{"a.txt": "a", "sub/s.txt": "s", ".gitignore": "*.log\n"})
	head := h.commit(map[string]string{"b.txt": "b", "sub/t.txt": "t"})
	// Uncommitted: a modified file, an untracked one, an ignored one.
	for name, content := range map[string]string{"a.txt": "dirty", "sub/new.txt": "new", "build.log": "ignored"} {
		if err := os.WriteFile(filepath.Join(h.path, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()

	f, err := WorkingTreeFacts(ctx, h.path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Branch != "main" || f.Commit != head.String() || f.Tag != "" {
		t.Errorf("facts %+v: want main at %s", f, head)
	}
	checkChanged(t, f, []string{"a.txt", "b.txt", "sub/new.txt", "sub/t.txt"})

	// A subdirectory is built as its own root: changes under it, from it.
	f, err = WorkingTreeFacts(ctx, filepath.Join(h.path, "sub"))
	if err != nil {
		t.Fatal(err)
	}
	checkChanged(t, f, []string{"new.txt", "t.txt"})

	// A directory in no repository: no branch, no commit, changes unknown.
	f, err = WorkingTreeFacts(ctx, t.TempDir())
	if err != nil || f.Branch != "" || f.Commit != "" || f.ChangedKnown {
		t.Errorf("plain directory: %+v, %v", f, err)
	}

	// A repository without a commit yet: its branch, nothing else.
	fresh := newHistory(t)
	f, err = WorkingTreeFacts(ctx, fresh.path)
	if err != nil || f.Branch != "main" || f.Commit != "" || f.ChangedKnown {
		t.Errorf("fresh repository: %+v, %v", f, err)
	}
}

func TestWorkingTreeFactsOfAnotherRepository(t *testing.T) {
	// gittest.Repo is what other packages' tests build with.
	dir, commit := gittest.Repo(t, map[string]string{"x/y.txt": "y"})
	f, err := WorkingTreeFacts(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Commit != commit {
		t.Errorf("commit %s, want %s", f.Commit, commit)
	}
	checkChanged(t, f, []string{"x/y.txt"}) // a root commit: all its files
}
