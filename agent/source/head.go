package source

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// LocalHead reads what a build of a local git repository would fetch, so
// that the build can say it: with branch empty, HEAD's commit and its
// branch ("" when HEAD is detached); with a branch, that branch's head.
// ok is false for anything else: a remote URL, a path that is not here, a
// directory that is no repository (built as its files, as WorkingTree says),
// a repository without a commit or without that branch (Fetch says what is
// wrong with it).
func LocalHead(url, branch string) (head, commit string, ok bool) {
	path, found := strings.CutPrefix(url, "file://")
	if !found && strings.Contains(url, "://") || !filepath.IsAbs(path) {
		return "", "", false
	}
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		return "", "", false
	}
	r, err := git.PlainOpen(path)
	if err != nil {
		return "", "", false
	}
	if branch != "" {
		ref, err := r.Reference(plumbing.NewBranchReferenceName(branch), true)
		if err != nil {
			return "", "", false
		}
		return branch, ref.Hash().String(), true
	}
	ref, err := r.Head()
	if err != nil {
		return "", "", false
	}
	if ref.Name().IsBranch() {
		head = ref.Name().Short()
	}
	return head, ref.Hash().String(), true
}
