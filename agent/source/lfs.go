package source

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// lfs replaces the Git LFS pointers of work's checkout with their files,
// fetched from the repository's LFS server with the fetch's credentials,
// when the tree has any (a .gitattributes names filter=lfs), unless
// script.yaml says `lfs: false`. Their objects are kept beside the mirror
// (lfs.storage), so every worktree of the repository shares them and a
// file already fetched is not fetched again; nothing of this is written
// in the checkout's .git. An agent without git-lfs leaves the pointers,
// and its log says so.
func (m *Mirrors) lfs(ctx context.Context, r *remote, mirror, work string, without bool) error {
	if !usesLFS(ctx, r, work) {
		return nil
	}
	if without {
		return pointersOnly(ctx, r, work)
	}
	if _, err := exec.LookPath("git-lfs"); err != nil {
		if m.Log != nil {
			m.Log.Warn("the repository has Git LFS files and this agent has no git-lfs: its checkout holds their pointers", "url", r.shown)
		}
		return nil
	}
	pull := *r
	pull.env = append(slices.Clone(r.env), "GIT_LFS_SKIP_SMUDGE=0")
	// git-lfs's filter, as `git lfs install` would set it, so that git sees
	// the files it writes as the commit's.
	pull.config = append(slices.Clone(r.config),
		setting{"lfs.storage", filepath.Join(mirror, "lfs")},
		setting{"filter.lfs.clean", "git-lfs clean -- %f"},
		setting{"filter.lfs.smudge", "git-lfs smudge -- %f"},
		setting{"filter.lfs.process", "git-lfs filter-process"},
		setting{"filter.lfs.required", "true"},
	)
	_, err := pull.run(ctx, "fetching Git LFS files", "-C", work, "lfs", "pull")
	return err
}

// usesLFS says whether one of work's .gitattributes files hands a path to
// Git LFS.
func usesLFS(ctx context.Context, r *remote, work string) bool {
	local := &remote{git: r.git, shown: r.shown}
	out, err := local.run(ctx, "", "-C", work, "ls-files", "-z", "--", "*.gitattributes")
	if err != nil {
		return false
	}
	for _, name := range strings.Split(string(out), "\x00") {
		if name == "" || filepath.Base(name) != ".gitattributes" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(work, name))
		if err == nil && bytes.Contains(b, []byte("filter=lfs")) {
			return true
		}
	}
	return false
}

// pointersOnly writes the LFS files of work's checkout as their pointers
// again, where an earlier build's fetch left their content: a checkout
// is the same on every agent.
func pointersOnly(ctx context.Context, r *remote, work string) error {
	local := &remote{git: r.git, shown: r.shown}
	files, err := local.run(ctx, "", "-C", work, "ls-files", "-z")
	if err != nil {
		return err
	}
	attrs, err := local.runWith(ctx, bytes.NewReader(files), "", "-C", work, "check-attr", "-z", "--stdin", "filter")
	if err != nil {
		return err
	}
	var paths bytes.Buffer
	f := strings.Split(string(attrs), "\x00") // path, attribute, value, ...
	for i := 0; i+2 < len(f); i += 3 {
		if f[i+2] == "lfs" {
			if err := os.Remove(filepath.Join(work, f[i])); err != nil && !os.IsNotExist(err) {
				return err
			}
			paths.WriteString(f[i] + "\x00")
		}
	}
	if paths.Len() == 0 {
		return nil
	}
	_, err = local.runWith(ctx, &paths, "", "-C", work, "checkout", "-q", "-f", "--pathspec-from-file=-", "--pathspec-file-nul")
	return err
}
