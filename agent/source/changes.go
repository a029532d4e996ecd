package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/monkeyci/monkeyci/pipeline"
)

// FactsOf says what a source that Fetch checked out into dir is, for the
// build's `when` conditions and its script's parameters: the branch (the
// one asked, else the one HEAD is on), the tag asked, HEAD's commit, and
// the files that commit changed (Changes). An error leaves the changes
// unknown, and says why; the rest of the facts still stand.
//
// It reads with the git program where the agent has it (on a large
// repository go-git's tree diff takes a second), else with go-git.
func FactsOf(ctx context.Context, dir string, src Source) (pipeline.Facts, error) {
	if git, err := exec.LookPath("git"); err == nil {
		return factsWithGit(ctx, git, dir, src)
	}
	return factsWithGoGit(ctx, dir, src)
}

// factsWithGit is FactsOf with the git program.
func factsWithGit(ctx context.Context, git, dir string, src Source) (pipeline.Facts, error) {
	f := pipeline.Facts{Branch: src.Branch, Tag: src.Tag, Commit: src.Commit}
	r := &remote{git: git, shown: dir}
	fail := func(err error) (pipeline.Facts, error) {
		return f, fmt.Errorf("reading the changes in %s: %w", dir, err)
	}
	out, err := r.run(ctx, "", "-C", dir, "rev-list", "--parents", "-n", "1", "HEAD")
	if err != nil {
		return fail(err)
	}
	ids := strings.Fields(string(out))
	if len(ids) == 0 {
		return fail(errors.New("HEAD names no commit"))
	}
	f.Commit = ids[0]
	if f.Branch == "" && f.Tag == "" {
		if out, err := r.run(ctx, "", "-C", dir, "symbolic-ref", "-q", "--short", "HEAD"); err == nil {
			f.Branch = strings.TrimSpace(string(out))
		}
	}
	if shallow, err := os.ReadFile(filepath.Join(dir, ".git", "shallow")); err == nil && slices.Contains(strings.Fields(string(shallow)), f.Commit) {
		return f, nil // a shallow fetch stopped at the commit: its parent is not here
	}
	var list []string
	if len(ids) == 1 { // a root commit: every file
		list = []string{"-C", dir, "ls-tree", "-r", "-z", "--name-only", "HEAD"}
	} else {
		if _, err := r.run(ctx, "", "-C", dir, "cat-file", "-e", ids[1]+"^{commit}"); err != nil {
			return f, nil
		}
		list = []string{"-C", dir, "diff-tree", "-r", "-z", "--name-only", "--no-renames", ids[1], f.Commit}
	}
	if out, err = r.run(ctx, "", list...); err != nil {
		return fail(err)
	}
	f.Changed = []string{}
	for _, p := range strings.Split(string(out), "\x00") {
		if p != "" {
			f.Changed = append(f.Changed, p)
		}
	}
	slices.Sort(f.Changed)
	f.Changed, f.ChangedKnown = slices.Compact(f.Changed), true
	return f, nil
}

// factsWithGoGit is FactsOf with go-git.
func factsWithGoGit(ctx context.Context, dir string, src Source) (pipeline.Facts, error) {
	f := pipeline.Facts{Branch: src.Branch, Tag: src.Tag, Commit: src.Commit}
	r, err := Open(dir)
	if err != nil {
		return f, fmt.Errorf("reading the changes in %s: %w", dir, err)
	}
	head, err := r.Head()
	if err != nil {
		return f, fmt.Errorf("reading the changes in %s: %w", dir, err)
	}
	f.Commit = head.Hash().String()
	if f.Branch == "" && f.Tag == "" && head.Name().IsBranch() {
		f.Branch = head.Name().Short()
	}
	f.Changed, f.ChangedKnown, err = changes(ctx, r, head.Hash())
	return f, err
}

// changes lists, sorted, the paths that commit h changed relative to its
// first parent (a merge is compared with the branch it was merged into),
// or every file of a root commit. known is false when the parent is not in
// the repository: a shallow fetch stopped at the commit.
func changes(ctx context.Context, r *git.Repository, h plumbing.Hash) (paths []string, known bool, err error) {
	c, err := r.CommitObject(h)
	if err != nil {
		return nil, false, fmt.Errorf("reading commit %s: %w", h, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, false, fmt.Errorf("reading the tree of %s: %w", h, err)
	}
	if len(c.ParentHashes) == 0 {
		var out []string
		err := tree.Files().ForEach(func(f *object.File) error {
			out = append(out, f.Name)
			return ctx.Err()
		})
		if err != nil {
			return nil, false, fmt.Errorf("listing the files of %s: %w", h, err)
		}
		slices.Sort(out)
		return out, true, nil
	}
	parent, err := r.CommitObject(c.ParentHashes[0])
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading the parent of %s: %w", h, err)
	}
	ptree, err := parent.Tree()
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading the tree of %s: %w", parent.Hash, err)
	}
	diff, err := object.DiffTreeContext(ctx, ptree, tree)
	if err != nil {
		return nil, false, fmt.Errorf("comparing %s with its parent: %w", h, err)
	}
	seen := map[string]bool{}
	for _, ch := range diff {
		for _, name := range []string{ch.From.Name, ch.To.Name} {
			if name != "" && !seen[name] {
				seen[name] = true
				paths = append(paths, name)
			}
		}
	}
	slices.Sort(paths)
	return paths, true, nil
}

// WorkingTreeFacts says what a working tree built as it is (monkeyci run)
// is: the branch and commit of HEAD, and as changed files the ones HEAD's
// commit changed plus every uncommitted change (staged, unstaged or
// untracked, what .gitignore ignores aside): what the build has that the
// commit before it did not. dir may be a subdirectory of the repository:
// then only changes under it count, named from it, as the build sees
// them. A directory in no repository has no branch nor commit, and its
// changes are unknown.
func WorkingTreeFacts(ctx context.Context, dir string) (pipeline.Facts, error) {
	var f pipeline.Facts
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("reading the repository of %s: %w", dir, err)
	}
	w, err := r.Worktree()
	if err != nil {
		return f, fmt.Errorf("reading the working tree of %s: %w", dir, err)
	}
	sym, err := r.Storer.Reference(plumbing.HEAD)
	if err != nil {
		return f, fmt.Errorf("reading HEAD of %s: %w", dir, err)
	}
	if sym.Type() == plumbing.SymbolicReference && sym.Target().IsBranch() {
		f.Branch = sym.Target().Short() // even before the first commit
	}
	head, err := r.Head()
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return f, nil // no commit yet: nothing to compare with
	}
	if err != nil {
		return f, fmt.Errorf("reading HEAD of %s: %w", dir, err)
	}
	f.Commit = head.Hash().String()
	committed, known, err := changes(ctx, r, head.Hash())
	if err != nil || !known {
		return f, err
	}
	status, err := w.Status()
	if err != nil {
		return f, fmt.Errorf("reading the uncommitted changes in %s: %w", dir, err)
	}
	all := slices.Clone(committed)
	for path, s := range status {
		if s.Staging != git.Unmodified || s.Worktree != git.Unmodified {
			all = append(all, path)
		}
		if s.Extra != "" { // a rename's other name
			all = append(all, s.Extra)
		}
	}
	prefix, err := subdir(w.Filesystem.Root(), dir)
	if err != nil {
		return f, err
	}
	for _, p := range all {
		if rest, ok := strings.CutPrefix(p, prefix); ok {
			f.Changed = append(f.Changed, rest)
		}
	}
	slices.Sort(f.Changed)
	f.Changed = slices.Compact(f.Changed)
	f.ChangedKnown = true
	return f, nil
}

// subdir is dir's slash-separated place in the working tree at root, with
// a trailing slash ("" for the root itself).
func subdir(root, dir string) (string, error) {
	rootAbs, err := filepath.EvalSymlinks(root)
	if err == nil {
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		return "", fmt.Errorf("locating %s in its repository: %w", dir, err)
	}
	rel, err := filepath.Rel(rootAbs, dir)
	if err != nil {
		return "", fmt.Errorf("locating %s in its repository: %w", dir, err)
	}
	if rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%s is outside its repository's working tree %s", dir, root)
	}
	if rel == "." {
		return "", nil
	}
	return filepath.ToSlash(rel) + "/", nil
}
