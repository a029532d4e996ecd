package source

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/buildscript"
	"github.com/monkeyci/monkeyci/internal/atomicfile"
)

// DefaultDepth is how many commits a checkout holds by default: enough for
// `git log` and for `git describe` to find a recent tag, few enough that a
// large repository's first fetch stays close to a shallow clone's.
const DefaultDepth = 20

// Mirrors keeps a bare mirror of each repository an agent builds, under
// Dir, and worktrees of it, with the git program: a build fetches from
// the remote only what its agent lacks, and its checkout is a worktree
// that an earlier build left, where only the files that differ are
// written. A build holds its worktree until it ends; builds at once take
// one each. Builds of one repository fetch and check out one at a time.
//
// A checkout is a repository as git makes it: .git present, Depth commits
// deep (0: the whole history), the mirror's tags, the commit checked out
// detached, with a branch of the build's name where it has one, origin set
// to the URL without its credentials, and the submodules. Its .git
// borrows the mirror's objects (objects/info/alternates), so a job reads
// them where the agent mounts the mirror: the repository's other branches
// are no secret from a build of it.
type Mirrors struct {
	Dir   string
	Git   string // the git program
	Depth int
	// CompactLoose and CompactPacks are the loose objects and packs past
	// which a mirror no build holds is packed anew before a fetch (0:
	// the defaults, git's own thresholds).
	CompactLoose, CompactPacks int
	// MaxBytes bounds Dir: after each fetch the least recently used
	// mirrors go until it holds at most that (0: no bound). One in use
	// stays.
	MaxBytes int64
	Log      hclog.Logger

	mu      sync.Mutex
	locks   map[string]*sync.Mutex
	holders map[string]holder // a running build's source: what it holds
}

// NewMirrors returns mirrors under dir, kept with the git program on PATH,
// or with go-git when there is none (the docker pool's minimal image: Git
// is then empty).
func NewMirrors(dir string, log hclog.Logger) *Mirrors {
	git, _ := exec.LookPath("git")
	return &Mirrors{Dir: dir, Git: git, Depth: DefaultDepth, Log: log}
}

// Fetch makes dir (missing or empty) a checkout of the commit src asks,
// by way of the repository's mirror, and returns the commit's full name:
// a copy of one of the repository's worktrees made of hard links, or,
// with src.Link, a link to that worktree, which the build holds (nothing
// changes it) until it removes dir. It answers as Fetch does: the same
// errors, credentials never shown.
func (m *Mirrors) Fetch(ctx context.Context, src Source, dir string) (commit string, err error) {
	want, err := src.check()
	if err != nil {
		return "", err
	}
	bare, _ := SplitCredentials(src.URL)
	r := &remote{url: endpointURL(src.URL), bare: endpointURL(bare), shown: Redact(src.URL), git: m.Git}
	r.config = credentialConfig(src.URL)
	answers := r.answers
	if m.Git == "" {
		answers = func(ctx context.Context) error { return answersGoGit(ctx, src) }
	}
	if src.SSHKey != "" && m.Git != "" { // go-git refuses it (snapshotGoGit)
		env, forget, err := m.sshKeyEnv(src.SSHKey)
		if err != nil {
			return "", fmt.Errorf("fetching %s: the deploy key: %w", r.shown, err)
		}
		defer forget()
		r.env = append(r.env, env...)
	}
	cleanup, err := prepareDir(dir)
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", r.shown, err)
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	repo := filepath.Join(m.Dir, mirrorName(r.bare))
	unlock := m.lock(repo)
	_, statErr := os.Stat(repo)
	commit, err = m.snapshot(ctx, r, repo, src, want, dir)
	// A failure on what the agent kept, while the remote answers and no
	// build holds the mirror: a fresh one tells whether it was the
	// mirror's fault (a network's hiccup costs no full fetch).
	if err != nil && statErr == nil && ctx.Err() == nil && !isNotFound(err) && !m.inUse(repo) && answers(ctx) == nil {
		if m.Log != nil {
			m.Log.Warn("the repository's mirror failed; fetching a fresh one", "url", r.shown, "mirror", repo, "error", err)
		}
		if src.Tell != nil {
			src.Tell("this agent's mirror of the repository failed (" + lastLine(err.Error()) + "); fetching a fresh one")
		}
		cleanup()
		if rmErr := os.RemoveAll(repo); rmErr != nil {
			err = fmt.Errorf("fetching %s: removing its damaged mirror: %w", r.shown, rmErr)
		} else if cleanup, err = prepareDir(dir); err == nil {
			commit, err = m.snapshot(ctx, r, repo, src, want, dir)
		}
	}
	unlock()
	if err != nil {
		return "", err
	}
	m.trim(repo)
	return commit, nil
}

// lastLine is the last line of git's words, where it says what it
// stopped on (the whole is in the agent's log).
func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.TrimSpace(s[strings.LastIndex(s, "\n")+1:])
}

// isNotFound says err is the remote's answer that it has no such
// repository, branch, tag or commit: no mirror is to blame.
func isNotFound(err error) bool {
	for _, nf := range []error{ErrRepositoryNotFound, ErrBranchNotFound, ErrTagNotFound, ErrCommitNotFound} {
		if errors.Is(err, nf) {
			return true
		}
	}
	return false
}

// snapshot brings the commit into repo's mirror, checks it out in one of
// repo's worktrees that no running build holds (or a new one), and makes
// dir a link to that worktree, which the build then holds until dir goes.
func (m *Mirrors) snapshot(ctx context.Context, r *remote, repo string, src Source, want, dir string) (string, error) {
	if m.Git == "" {
		return m.snapshotGoGit(ctx, src, want, repo, dir)
	}
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return "", fmt.Errorf("fetching %s: %w", r.shown, err)
	}
	now := time.Now() // used: last to go
	_ = os.Chtimes(repo, now, now)
	mirror := filepath.Join(repo, "mirror.git")
	m.compact(ctx, r, repo, mirror)
	commit, branch, err := m.fetchInto(ctx, r, mirror, src, want)
	if err != nil {
		return "", err
	}
	work := m.freeWorktree(repo)
	if err := m.checkout(ctx, r, mirror, work, commit, branch); err != nil {
		return "", err
	}
	// The tree's size is noted while the rest is done: it reads the
	// commit's objects only, and nothing after changes which commit.
	noted := make(chan struct{})
	go func() {
		defer close(noted)
		m.noteTreeBytes(ctx, r, repo, work)
	}()
	defer func() { <-noted }()
	// What the commit's script.yaml asks of its checkout. A broken one is
	// the build's error to tell: the defaults stand here.
	sc, _ := buildscript.LoadConfig(work)
	if err := m.deepen(ctx, r, mirror, work, commit, branch, sc); err != nil {
		return "", err
	}
	if err := m.submodules(ctx, r, work, sc.NoSubmodules); err != nil {
		return "", err
	}
	if err := m.lfs(ctx, r, mirror, work, sc.NoLFS); err != nil {
		return "", err
	}
	if src.Link {
		// dir is empty (prepareDir): it becomes the link, and the build
		// holds the worktree.
		if err := linkInPlace(work, dir); err != nil {
			return "", fmt.Errorf("fetching %s: %w", r.shown, err)
		}
	} else if err := linkTree(work, dir); err != nil {
		return "", fmt.Errorf("fetching %s: linking its checkout: %w", r.shown, err)
	}
	m.hold(dir, repo, work, src.Link)
	return commit, nil
}

// compact packs mirror's objects when it holds more loose objects or
// packs than the thresholds (git's gc.auto and gc.autoPackLimit by
// default): a small fetch leaves its objects loose, and the mirror's own
// gc is off while checkouts read it. Only when no running build borrows
// its objects, under the repository's lock. Every object is kept, on a
// ref of the mirror or not (a worktree's commit fetched by its name is
// on none): the loose ones go into a pack of their own, and too many
// packs become one. A failure only leaves it as it was.
func (m *Mirrors) compact(ctx context.Context, r *remote, repo, mirror string) {
	if m.inUse(repo) {
		return
	}
	local := &remote{git: r.git, shown: r.shown}
	start := time.Now()
	packed := func(what string, err error) {
		switch {
		case err != nil && m.Log != nil:
			m.Log.Warn("could not pack a mirror's objects", "mirror", mirror, "error", err)
		case err == nil && m.Log != nil:
			m.Log.Info("packed a mirror's objects", "mirror", mirror, "what", what, "took", time.Since(start))
		}
	}
	if loose := looseObjects(mirror); len(loose) > cmp.Or(m.CompactLoose, 6700) {
		_, err := local.runWith(ctx, strings.NewReader(strings.Join(loose, "\n")+"\n"), "",
			"-C", mirror, "pack-objects", "-q", filepath.Join("objects", "pack", "pack"))
		if err == nil {
			_, err = local.run(ctx, "", "-C", mirror, "prune-packed", "-q")
		}
		if packed(fmt.Sprintf("%d loose objects", len(loose)), err); err != nil {
			return
		}
	}
	if packs, _ := filepath.Glob(filepath.Join(mirror, "objects", "pack", "*.pack")); len(packs) > cmp.Or(m.CompactPacks, 50) {
		_, err := local.run(ctx, "", "-C", mirror, "repack", "-a", "-d", "-q", "--keep-unreachable")
		packed(fmt.Sprintf("%d packs", len(packs)), err)
	}
}

// looseObjects are the names of mirror's loose objects.
func looseObjects(mirror string) []string {
	dirs, _ := filepath.Glob(filepath.Join(mirror, "objects", "[0-9a-f][0-9a-f]"))
	var names []string
	for _, d := range dirs {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if name := filepath.Base(d) + e.Name(); (len(name) == 40 || len(name) == 64) && e.Type().IsRegular() {
				names = append(names, name)
			}
		}
	}
	return names
}

// linkTree makes dst (an empty folder) a copy of src made of hard links:
// a snapshot that costs a link per file. git replaces a file it changes
// (a new file renamed into place), so a snapshot keeps what it linked.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.Mkdir(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return os.Link(p, target)
		}
		return nil // a socket or a pipe is no part of a checkout
	})
}

// OverlayFrom is the size of tree from which a repository's builds lay
// their workspace over its worktree rather than copy it: an overlay costs
// nothing to make but taxes what the build writes (a 200 MB cache is
// restored some 10 to 20% slower through it, measured here), a copy costs
// its bytes once. Past this size the copy is the dearer.
const OverlayFrom = 32 << 20

// SmallTree says whether the last checkout of url on this agent held
// fewer than OverlayFrom bytes of files: its workspace is copied. A tree
// not known yet is not small: a repository's first build on an agent lays
// its workspace over its checkout, which costs nothing when the tree is
// large, and little more than a copy when it is not.
func (m *Mirrors) SmallTree(url string) bool {
	bare, _ := SplitCredentials(url)
	b, err := os.ReadFile(filepath.Join(m.Dir, mirrorName(endpointURL(bare)), treeBytesFile))
	if err != nil {
		return false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return err == nil && n < OverlayFrom
}

// treeBytesFile keeps, in a repository's folder, the bytes of files its
// last checkout held.
const treeBytesFile = "tree-bytes"

// noteTreeBytes records the bytes of files work's HEAD holds (as git
// lists them: no file is read). A failure only leaves the size unknown.
func (m *Mirrors) noteTreeBytes(ctx context.Context, r *remote, repo, work string) {
	local := &remote{git: r.git, shown: r.shown}
	out, err := local.run(ctx, "", "-C", work, "ls-tree", "-r", "-l", "--full-tree", "HEAD")
	if err != nil {
		return
	}
	var total int64
	for _, line := range strings.Split(string(out), "\n") {
		meta, _, ok := strings.Cut(line, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 4 {
			continue
		}
		if n, err := strconv.ParseInt(f[3], 10, 64); err == nil { // "-" for a submodule
			total += n
		}
	}
	_ = os.WriteFile(filepath.Join(repo, treeBytesFile), []byte(strconv.FormatInt(total, 10)), 0o644)
}

// freeWorktree is a worktree of repo that no running build holds: one
// that exists (checking a new commit out there writes only what differs)
// or else a new one. Called under repo's lock.
func (m *Mirrors) freeWorktree(repo string) string {
	held := m.heldWorktrees()
	for i := 0; ; i++ {
		work := filepath.Join(repo, fmt.Sprintf("work-%d", i))
		if !held[work] {
			return work
		}
	}
}

// newWorktree makes work a worktree of mirror: from another worktree of
// the repository, when there is one (a running build holds it, and
// nothing changes it), made of hard links (git replaces every file it
// changes, its index too, so the checkout then writes only what differs
// and the other keeps what it had); else a new repository that borrows
// the mirror's objects.
func (m *Mirrors) newWorktree(ctx context.Context, local, r *remote, mirror, work string) error {
	if seed := m.seedWorktree(filepath.Dir(mirror), work); seed != "" {
		err := os.Mkdir(work, 0o755)
		if err == nil {
			err = linkTree(seed, work)
		}
		if err == nil {
			return nil
		}
		if m.Log != nil {
			m.Log.Warn("a worktree could not start from another; checking it out whole", "worktree", work, "error", err)
		}
		if err := os.RemoveAll(work); err != nil {
			return fmt.Errorf("fetching %s: %w", r.shown, err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q", work},
		{"-C", work, "remote", "add", "origin", r.bare},
		{"-C", work, "config", "gc.auto", "0"},
	} {
		if _, err := local.run(ctx, "", args...); err != nil {
			return err
		}
	}
	if err := borrowObjects(filepath.Join(work, ".git"), mirror); err != nil {
		return fmt.Errorf("fetching %s: %w", r.shown, err)
	}
	return nil
}

// seedWorktree is an existing worktree of repo other than work, whose
// files a new worktree may start from, or "".
func (m *Mirrors) seedWorktree(repo, work string) string {
	found, _ := filepath.Glob(filepath.Join(repo, "work-*", ".git"))
	for _, dotGit := range found {
		if w := filepath.Dir(dotGit); w != work {
			return w
		}
	}
	return ""
}

// hold notes that the build whose source is dir borrows repo's objects
// until dir is gone, and, when it is a link to work, holds work: nothing
// changes it meanwhile.
func (m *Mirrors) hold(dir, repo, work string, link bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.holders == nil {
		m.holders = map[string]holder{}
	}
	h := holder{repo: repo}
	if link {
		h.work = work
	}
	m.holders[dir] = h
}

// holder is what a running build's source holds.
type holder struct{ repo, work string }

// liveHolders are the holders whose build's source still exists.
func (m *Mirrors) liveHolders() []holder {
	m.mu.Lock()
	defer m.mu.Unlock()
	var live []holder
	for dir, h := range m.holders {
		if _, err := os.Lstat(dir); err != nil {
			delete(m.holders, dir) // the build is over
			continue
		}
		live = append(live, h)
	}
	return live
}

// heldWorktrees are the worktrees running builds hold.
func (m *Mirrors) heldWorktrees() map[string]bool {
	held := map[string]bool{}
	for _, h := range m.liveHolders() {
		if h.work != "" {
			held[h.work] = true
		}
	}
	return held
}

// inUse says whether a running build borrows repo's objects.
func (m *Mirrors) inUse(repo string) bool {
	for _, h := range m.liveHolders() {
		if h.repo == repo {
			return true
		}
	}
	return false
}

// trim removes the least recently used mirrors, but keep and those in use,
// until Dir holds at most MaxBytes.
func (m *Mirrors) trim(keep string) {
	if m.MaxBytes <= 0 {
		return
	}
	entries, err := os.ReadDir(m.Dir)
	if err != nil {
		return
	}
	type mirror struct {
		path string
		size int64
		used time.Time
	}
	var all []mirror
	var total int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(m.Dir, e.Name())
		size := repoSize(p)
		total += size
		all = append(all, mirror{p, size, info.ModTime()})
	}
	slices.SortFunc(all, func(a, b mirror) int { return a.used.Compare(b.used) })
	for _, mr := range all {
		if total <= m.MaxBytes {
			return
		}
		if mr.path == keep || m.inUse(mr.path) || !m.tryLock(mr.path) {
			continue
		}
		err := os.RemoveAll(mr.path)
		m.unlock(mr.path)
		if err == nil {
			total -= mr.size
			if m.Log != nil {
				m.Log.Info("removed the least recently used mirror", "mirror", mr.path, "bytes", mr.size)
			}
		}
	}
}

// repoSize is the bytes a repository's folder holds: its mirror's, and
// its worktrees' as the tree size its last checkout noted (a walk of
// every worktree's files would cost each build a tenth of a second and
// more on a large repository), or as walked when none was noted.
func repoSize(repo string) int64 {
	n := dirSize(filepath.Join(repo, "mirror.git"))
	works, _ := filepath.Glob(filepath.Join(repo, "work-*"))
	tree, err := os.ReadFile(filepath.Join(repo, treeBytesFile))
	perWork, perr := strconv.ParseInt(strings.TrimSpace(string(tree)), 10, 64)
	for _, w := range works {
		if err == nil && perr == nil {
			n += perWork
		} else {
			n += dirSize(w)
		}
	}
	return n
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// fetchInto fetches what src asks into mirror (made when missing), in the
// cheapest way the remote allows, as Fetch does: a branch's or tag's head;
// the commit itself; at last, every branch and tag in full.
func (m *Mirrors) fetchInto(ctx context.Context, r *remote, mirror string, src Source, want string) (commit, branch string, err error) {
	if err := m.ensure(ctx, r, mirror); err != nil {
		return "", "", err
	}
	depth := []string{}
	if d := m.fetchDepth(filepath.Dir(mirror), src); d > 0 {
		depth = append(depth, "--depth="+strconv.Itoa(d))
	} else if _, err := os.Stat(filepath.Join(mirror, "shallow")); err == nil {
		depth = append(depth, "--unshallow")
	}
	branch = src.Branch
	switch {
	case want == "" && src.Tag != "":
		ref := "refs/tags/" + src.Tag
		if err := r.fetch(ctx, mirror, depth, "+"+ref+":"+ref); err != nil {
			return "", "", tagMissing(err, src.Tag, r.shown)
		}
		commit, err = r.revParse(ctx, mirror, ref+"^{commit}")
		return commit, "", err
	case want == "" && branch == "":
		if branch, err = r.defaultBranch(ctx); err != nil {
			return "", "", err
		}
	}
	if branch != "" {
		ref := "refs/heads/" + branch
		err := r.fetch(ctx, mirror, depth, "+"+ref+":"+ref)
		if want == "" {
			if err != nil {
				return "", "", branchMissing(err, branch, r.shown)
			}
			commit, err = r.revParse(ctx, mirror, ref+"^{commit}")
			return commit, branch, err
		}
		if err != nil && ctx.Err() != nil {
			return "", "", err
		}
	}
	if branch == "" {
		// The remote is asked even when the mirror holds the commit: the
		// URL's credentials must still open it.
		if err := r.answers(ctx); err != nil {
			return "", "", err
		}
	}
	// A commit: here already (its branch's head), or asked by name, or
	// found in the whole history.
	if commit, err = r.revParse(ctx, mirror, want+"^{commit}"); err == nil {
		return commit, branch, nil
	}
	if len(want) == 40 {
		if err := r.fetch(ctx, mirror, depth, want); err == nil {
			if commit, err = r.revParse(ctx, mirror, want+"^{commit}"); err == nil {
				return commit, branch, nil
			}
		} else if ctx.Err() != nil {
			return "", "", err
		}
	}
	full := []string{}
	if _, err := os.Stat(filepath.Join(mirror, "shallow")); err == nil {
		full = append(full, "--unshallow")
	}
	if err := r.fetch(ctx, mirror, full, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"); err != nil {
		return "", "", err
	}
	if commit, err = r.revParse(ctx, mirror, want+"^{commit}"); err != nil {
		return "", "", &notFound{msg: fmt.Sprintf("commit %s not found in %s", want, r.shown), is: ErrCommitNotFound}
	}
	return commit, branch, nil
}

// ensure makes mirror a bare repository if it is not one yet: made aside
// and renamed into place, so a half-made mirror is never found. It lets a
// checkout ask for any commit it holds, and never collects garbage on its
// own while checkouts read it.
func (m *Mirrors) ensure(ctx context.Context, r *remote, mirror string) error {
	if _, err := os.Stat(mirror); err == nil {
		return nil
	}
	if err := os.MkdirAll(m.Dir, 0o755); err != nil {
		return fmt.Errorf("fetching %s: %w", r.shown, err)
	}
	tmp, err := os.MkdirTemp(m.Dir, ".new-")
	if err != nil {
		return fmt.Errorf("fetching %s: %w", r.shown, err)
	}
	defer os.RemoveAll(tmp) // gone once renamed
	for _, args := range [][]string{
		{"init", "-q", "--bare", tmp},
		{"-C", tmp, "config", "uploadpack.allowAnySHA1InWant", "true"},
		{"-C", tmp, "config", "gc.auto", "0"},
	} {
		if _, err := r.run(ctx, "", args...); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, mirror); err != nil {
		return fmt.Errorf("fetching %s: %w", r.shown, err)
	}
	return nil
}

// checkout checks commit out in work, the repository's worktree kept
// between builds (only the files that differ are written), detached, with
// branch (if any) and the mirror's tags at their commits. work borrows
// the mirror's objects (objects/info/alternates) and its shallow bounds.
func (m *Mirrors) checkout(ctx context.Context, r *remote, mirror, work, commit, branch string) error {
	local := &remote{git: r.git, shown: r.shown}
	dotGit := filepath.Join(work, ".git")
	if _, err := os.Stat(dotGit); err != nil {
		if err := m.newWorktree(ctx, local, r, mirror, work); err != nil {
			return err
		}
	}
	if err := copyShallow(mirror, dotGit); err != nil {
		return fmt.Errorf("fetching %s: %w", r.shown, err)
	}
	trustIndex(dotGit)
	// A snapshot's links change its files' ctime: no change to git.
	if _, err := local.run(ctx, "", "-C", work, "-c", "advice.detachedHead=false", "-c", "core.trustctime=false", "checkout", "-q", "-f", "--detach", commit); err != nil {
		return err
	}
	// The untracked files go while the refs are set: neither touches
	// what the other does.
	cleaned := make(chan error, 1)
	go func() {
		_, err := local.run(ctx, "", "-C", work, "clean", "-q", "-ffdx")
		cleaned <- err
	}()
	err := m.setRefs(ctx, local, mirror, work, commit, branch)
	return cmp.Or(<-cleaned, err)
}

// trustIndex sets the time of a kept worktree's index to now. Git wrote
// every file of the worktree, and the index after them, and nothing
// writes there between checkouts: what the index says of each file is
// true. But of a file written in the second its index was, git cannot
// know it ("racily clean", git's Documentation/technical/racy-git.txt),
// and reads and hashes every such file at each later checkout: here
// 300 ms for those the last second of a 150 MB first checkout wrote,
// against 100 ms for the whole checkout of a new commit. An index still
// linked to another worktree's (newWorktree) is left alone: a build may
// hold that one.
func trustIndex(dotGit string) {
	index := filepath.Join(dotGit, "index")
	fi, err := os.Stat(index)
	if err != nil {
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Nlink != 1 {
		return
	}
	now := time.Now()
	_ = os.Chtimes(index, now, now)
}

// setRefs gives work the mirror's tags, and branch (if any) at commit.
func (m *Mirrors) setRefs(ctx context.Context, local *remote, mirror, work, commit, branch string) error {
	tags, err := local.run(ctx, "", "-C", mirror, "for-each-ref", "--format=update %(refname) %(objectname)", "refs/tags")
	if err != nil {
		return err
	}
	refs := string(tags)
	if branch != "" {
		refs += fmt.Sprintf("update refs/heads/%s %s\nupdate refs/remotes/origin/%s %s\n", branch, commit, branch, commit)
	}
	if refs == "" {
		return nil
	}
	_, err = local.runWith(ctx, strings.NewReader(refs), "", "-C", work, "update-ref", "--stdin")
	return err
}

// deepen gives the checkout the history script.yaml's depth asks, when it
// is more than the mirror's fetches hold: the mirror fetches it (every
// later checkout has it too) and the worktree takes its shallow bounds.
func (m *Mirrors) deepen(ctx context.Context, r *remote, mirror, work, commit, branch string, sc buildscript.Config) error {
	keep, more := m.asksMore(mirror, sc)
	if !more {
		return nil
	}
	// The branch's ref when there is one: a server may refuse a commit no
	// ref points at.
	spec := commit
	if branch != "" {
		spec = "+refs/heads/" + branch + ":refs/heads/" + branch
	}
	opt := "--unshallow"
	if keep > 0 {
		opt = "--depth=" + strconv.Itoa(keep)
	}
	if err := r.fetch(ctx, mirror, []string{opt}, spec); err != nil {
		return err
	}
	if err := keepDepth(mirror, keep); err != nil {
		return fmt.Errorf("fetching %s: %w", r.shown, err)
	}
	return copyShallow(mirror, filepath.Join(work, ".git"))
}

// asksMore says whether script.yaml asks more history than the shallow
// mirror keeps, and how much it asks (0: all of it).
func (m *Mirrors) asksMore(mirror string, sc buildscript.Config) (keep int, more bool) {
	if _, err := os.Stat(filepath.Join(mirror, "shallow")); err != nil {
		return 0, false // the whole history already
	}
	if sc.FullHistory {
		return 0, true
	}
	held := m.depthOf(filepath.Dir(mirror))
	return sc.Depth, sc.Depth > 0 && held > 0 && sc.Depth > held
}

// keepDepth has the mirror's later fetches keep that much history, not
// the default's shallower one.
func keepDepth(mirror string, keep int) error {
	return os.WriteFile(filepath.Join(filepath.Dir(mirror), depthFile), []byte(strconv.Itoa(keep)), 0o644)
}

// borrowObjects has the repository at dotGit borrow mirror's objects
// (objects/info/alternates).
func borrowObjects(dotGit, mirror string) error {
	alternates := filepath.Join(dotGit, "objects", "info", "alternates")
	if err := os.MkdirAll(filepath.Dir(alternates), 0o755); err != nil {
		return err
	}
	return os.WriteFile(alternates, []byte(filepath.Join(mirror, "objects")+"\n"), 0o644)
}

// depthFile keeps, in a repository's folder, the depth its mirror fetches
// at when a build asked more than the default (0: the whole history).
const depthFile = "depth"

// fetchDepth is the depth a fetch into repo's mirror asks (0: all of it):
// the deeper of what the build's repository asks (its setting, else the
// agent's default) and what the mirror keeps.
func (m *Mirrors) fetchDepth(repo string, src Source) int {
	want, held := m.Depth, m.depthOf(repo)
	if src.Depth != nil {
		want = *src.Depth
	}
	if want == 0 || held == 0 {
		return 0
	}
	return max(want, held)
}

// depthOf is the depth repo's mirror fetches at (0: all of it).
func (m *Mirrors) depthOf(repo string) int {
	b, err := os.ReadFile(filepath.Join(repo, depthFile))
	if err != nil {
		return m.Depth
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 {
		return m.Depth
	}
	return n
}

// copyShallow gives dotGit the mirror's shallow commits (or none).
func copyShallow(mirror, dotGit string) error {
	b, err := os.ReadFile(filepath.Join(mirror, "shallow"))
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(strings.TrimSpace(string(b))) == 0) {
		// None, or none left (go-git empties the file).
		if err := os.Remove(filepath.Join(dotGit, "shallow")); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err != nil {
		return err
	}
	// Replaced, never written into: a running build's checkout may hold
	// a hard link to it.
	return atomicfile.Write(filepath.Join(dotGit, "shallow"), 0o644, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// lock takes one repository's lock (its mirror and worktree are changed
// by one build at a time) and returns what releases it.
func (m *Mirrors) lock(repo string) func() {
	l := m.lockOf(repo)
	l.Lock()
	return l.Unlock
}

// tryLock takes a repository's lock to remove it, if no one holds it.
func (m *Mirrors) tryLock(repo string) bool { return m.lockOf(repo).TryLock() }

func (m *Mirrors) unlock(repo string) { m.lockOf(repo).Unlock() }

func (m *Mirrors) lockOf(repo string) *sync.Mutex {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks == nil {
		m.locks = map[string]*sync.Mutex{}
	}
	l, ok := m.locks[repo]
	if !ok {
		l = &sync.Mutex{}
		m.locks[repo] = l
	}
	return l
}

// mirrorName is the repository's folder for a URL without credentials.
func mirrorName(bare string) string {
	sum := sha256.Sum256([]byte(bare))
	return hex.EncodeToString(sum[:12])
}
