package source_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/internal/gittest"
)

// A local repository's HEAD gives its branch and commit, or a branch's
// head when one is asked; anything that is not a local repository with a
// commit gives nothing.
func TestLocalHeadSaysWhatALocalBuildFetches(t *testing.T) {
	repo, first := gittest.Repo(t, map[string]string{"a": "1"})
	r, err := git.PlainOpen(repo)
	if err != nil {
		t.Fatal(err)
	}
	head, err := r.Head()
	if err != nil {
		t.Fatal(err)
	}
	branch := head.Name().Short()
	if err := r.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName("feature"), plumbing.NewHash(first))); err != nil {
		t.Fatal(err)
	}
	second := gittest.Commit(t, r, repo, map[string]string{"a": "2"})

	detached, _ := gittest.Repo(t, map[string]string{"a": "1"})
	d, _ := git.PlainOpen(detached)
	dh, _ := d.Head()
	if err := d.Storer.SetReference(plumbing.NewHashReference(plumbing.HEAD, dh.Hash())); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	if _, err := git.PlainInit(empty, false); err != nil {
		t.Fatal(err)
	}
	plain := t.TempDir()
	sub := filepath.Join(repo, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, url, branch    string
		wantBranch, wantHead string
		ok                   bool
	}{
		{"HEAD on a branch", repo, "", branch, second, true},
		{"a file:// URL", "file://" + repo, "", branch, second, true},
		{"a branch asked", repo, "feature", "feature", first, true},
		{"a detached HEAD", detached, "", "", dh.Hash().String(), true},
		{"a branch that is not there", repo, "nope", "", "", false},
		{"a repository without a commit", empty, "", "", "", false},
		{"a directory that is no repository", plain, "", "", "", false},
		{"a folder inside a repository", sub, "", "", "", false},
		{"a path not on this machine", filepath.Join(plain, "gone"), "", "", "", false},
		{"a relative path", "some/repo", "", "", "", false},
		{"a remote", "https://example.com/acme/app.git", "", "", "", false},
		{"an scp-like remote", "git@example.com:acme/app.git", "", "", "", false},
		{"nothing", "", "", "", "", false},
	}
	for _, tc := range tests {
		b, c, ok := source.LocalHead(tc.url, tc.branch)
		if b != tc.wantBranch || c != tc.wantHead || ok != tc.ok {
			t.Errorf("%s: LocalHead(%q, %q) = %q, %q, %v; want %q, %q, %v", tc.name, tc.url, tc.branch, b, c, ok, tc.wantBranch, tc.wantHead, tc.ok)
		}
	}
}
