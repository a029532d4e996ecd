package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/buildscript"
)

// DefaultDepth is how many commits a checkout holds by default: enough for
// `git log` and for `git describe` to find a recent tag, few enough that a
// large repository's first fetch stays close to a shallow clone's.
const DefaultDepth = 20

// Mirrors keeps a bare mirror of each repository an agent builds, under
// Dir, and makes each build's checkout from it, with the git program: a
// build fetches from the remote only what its agent lacks, and its
// checkout is then local. Builds of one repository share its mirror: one
// fetches into it at a time, any number read it.
//
// A checkout is a repository as git makes it: .git present, Depth commits
// deep (0: the whole history), the tags that point into them, the commit
// checked out detached, with a branch of the build's name where it has
// one, and origin set to the URL without its credentials. It holds only
// what the commit reaches, never another branch the mirror holds.
type Mirrors struct {
	Dir   string
	Git   string // the git program
	Depth int
	// MaxBytes bounds Dir: after each fetch the least recently used
	// mirrors go until it holds at most that (0: no bound). One in use
	// stays.
	MaxBytes int64
	Log      hclog.Logger

	mu    sync.Mutex
	locks map[string]*sync.RWMutex
}

// NewMirrors returns mirrors under dir, or false when the git program is not
// on PATH (the docker pool's minimal image): Fetch then does without.
func NewMirrors(dir string, log hclog.Logger) (*Mirrors, bool) {
	git, err := exec.LookPath("git")
	if err != nil {
		return nil, false
	}
	return &Mirrors{Dir: dir, Git: git, Depth: DefaultDepth, Log: log}, true
}

// Fetch makes dir (missing or empty) a checkout of the commit src asks,
// by way of the repository's mirror, and returns the commit's full name.
// It answers as Fetch does: the same errors, credentials never shown.
func (m *Mirrors) Fetch(ctx context.Context, src Source, dir string) (commit string, err error) {
	want, err := src.check()
	if err != nil {
		return "", err
	}
	bare, _ := SplitCredentials(src.URL)
	r := &remote{url: endpointURL(src.URL), bare: endpointURL(bare), shown: Redact(src.URL), git: m.Git}
	r.env = credentialEnv(src.URL)
	cleanup, err := prepareDir(dir)
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", r.shown, err)
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	mirror := filepath.Join(m.Dir, mirrorName(r.bare))
	commit, branch, err := m.update(ctx, r, mirror, src, want)
	if err != nil {
		return "", err
	}
	read := m.lock(mirror, false)
	err = m.checkout(ctx, r, mirror, dir, commit, branch)
	read()
	if err != nil {
		return "", err
	}
	m.trim(mirror)
	return commit, nil
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
		if err != nil || !e.IsDir() || !strings.HasSuffix(e.Name(), ".git") {
			continue
		}
		p := filepath.Join(m.Dir, e.Name())
		size := dirSize(p)
		total += size
		all = append(all, mirror{p, size, info.ModTime()})
	}
	slices.SortFunc(all, func(a, b mirror) int { return a.used.Compare(b.used) })
	for _, mr := range all {
		if total <= m.MaxBytes {
			return
		}
		if mr.path == keep || !m.tryLock(mr.path) {
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

// update brings the commit asked into the mirror, under the mirror's lock,
// and says which it is and on which branch. A fetch that fails on a mirror
// that a fresh one then fetches into was the mirror's fault: it is
// replaced, and the agent's log says so.
func (m *Mirrors) update(ctx context.Context, r *remote, mirror string, src Source, want string) (commit, branch string, err error) {
	unlock := m.lock(mirror, true)
	defer unlock()
	_, statErr := os.Stat(mirror)
	fresh := errors.Is(statErr, os.ErrNotExist)
	if !fresh {
		now := time.Now() // used: last to go
		_ = os.Chtimes(mirror, now, now)
	}
	commit, branch, err = m.fetchInto(ctx, r, mirror, src, want)
	if err == nil || fresh || ctx.Err() != nil || errors.Is(err, ErrRepositoryNotFound) ||
		errors.Is(err, ErrBranchNotFound) || errors.Is(err, ErrTagNotFound) || errors.Is(err, ErrCommitNotFound) {
		return commit, branch, err
	}
	if m.Log != nil {
		m.Log.Warn("the repository's mirror failed; fetching a fresh one", "url", r.shown, "mirror", mirror, "error", err)
	}
	if rmErr := os.RemoveAll(mirror); rmErr != nil {
		return "", "", fmt.Errorf("fetching %s: removing its damaged mirror: %w", r.shown, rmErr)
	}
	return m.fetchInto(ctx, r, mirror, src, want)
}

// fetchInto fetches what src asks into mirror (made when missing), in the
// cheapest way the remote allows, as Fetch does: a branch's or tag's head;
// the commit itself; at last, every branch and tag in full.
func (m *Mirrors) fetchInto(ctx context.Context, r *remote, mirror string, src Source, want string) (commit, branch string, err error) {
	if err := m.ensure(ctx, r, mirror); err != nil {
		return "", "", err
	}
	depth := []string{}
	if m.Depth > 0 {
		depth = append(depth, "--depth="+strconv.Itoa(m.Depth))
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
		if _, err := r.run(ctx, "listing refs", "ls-remote", r.bare, "HEAD"); err != nil {
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

// checkout makes dir a repository holding commit, m.Depth deep, and the
// tags that point into what it holds, fetched from mirror, and checks the
// commit out detached, with branch (if any) at it.
func (m *Mirrors) checkout(ctx context.Context, r *remote, mirror, dir, commit, branch string) error {
	from := "file://" + mirror
	fetch := []string{"-C", dir, "fetch", "-q", "--no-tags"}
	if m.Depth > 0 {
		fetch = append(fetch, "--depth="+strconv.Itoa(m.Depth))
	}
	local := &remote{git: r.git, shown: r.shown}
	steps := [][]string{
		{"init", "-q", dir},
		{"-C", dir, "remote", "add", "origin", r.bare},
		append(fetch, from, commit),
		{"-C", dir, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", commit},
	}
	for _, args := range steps {
		if _, err := local.run(ctx, "", args...); err != nil {
			return err
		}
	}
	if err := m.copyTags(ctx, local, mirror, dir); err != nil {
		return err
	}
	if branch != "" {
		for _, ref := range []string{"refs/heads/" + branch, "refs/remotes/origin/" + branch} {
			if _, err := local.run(ctx, "", "-C", dir, "update-ref", ref, commit); err != nil {
				return err
			}
		}
	}
	return m.submodules(ctx, r, dir)
}

// submodules checks out the repository's submodules, recursively, from
// their own remotes with the same credentials (a header for the
// repository's origin: a submodule elsewhere is fetched without them),
// unless .monkeyci/script.yaml says `submodules: false`. git's own rules
// stand: a submodule's file:// or ext:: URL is refused.
func (m *Mirrors) submodules(ctx context.Context, r *remote, dir string) error {
	if _, err := os.Lstat(filepath.Join(dir, ".gitmodules")); err != nil {
		return nil
	}
	if sc, err := buildscript.LoadConfig(dir); err == nil && sc.NoSubmodules {
		return nil // a broken script.yaml is the build's error to tell
	}
	update := []string{"-C", dir, "submodule", "update", "--init", "--recursive"}
	if m.Depth > 0 {
		// A server that refuses a commit no branch points at takes the
		// whole history instead.
		if _, err := r.run(ctx, "fetching submodules", append(update, "--depth="+strconv.Itoa(m.Depth))...); err == nil {
			return nil
		}
	}
	_, err := r.run(ctx, "fetching submodules", update...)
	return err
}

// copyTags gives dir the mirror's tags whose commits dir holds (and their
// tag objects): what `git describe --tags` looks for.
func (m *Mirrors) copyTags(ctx context.Context, local *remote, mirror, dir string) error {
	out, err := local.run(ctx, "", "-C", mirror, "for-each-ref", "--format=%(refname) %(objectname) %(*objectname)", "refs/tags")
	if err != nil || len(out) == 0 {
		return err
	}
	var specs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		target := f[len(f)-1] // the commit an annotated tag points at
		if _, err := local.run(ctx, "", "-C", dir, "cat-file", "-e", target+"^{commit}"); err == nil {
			specs = append(specs, f[0]+":"+f[0])
		}
	}
	if len(specs) == 0 {
		return nil
	}
	args := append([]string{"-C", dir, "fetch", "-q", "--no-tags", "file://" + mirror}, specs...)
	_, err = local.run(ctx, "", args...)
	return err
}

// lock takes one mirror's lock, to write (fetch into it) or to read
// (check out of it), and returns what releases it.
func (m *Mirrors) lock(mirror string, write bool) func() {
	l := m.lockOf(mirror)
	if write {
		l.Lock()
		return l.Unlock
	}
	l.RLock()
	return l.RUnlock
}

// tryLock takes a mirror's lock to remove it, if no one holds it.
func (m *Mirrors) tryLock(mirror string) bool { return m.lockOf(mirror).TryLock() }

func (m *Mirrors) unlock(mirror string) { m.lockOf(mirror).Unlock() }

func (m *Mirrors) lockOf(mirror string) *sync.RWMutex {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks == nil {
		m.locks = map[string]*sync.RWMutex{}
	}
	l, ok := m.locks[mirror]
	if !ok {
		l = &sync.RWMutex{}
		m.locks[mirror] = l
	}
	return l
}

// mirrorName is the mirror's folder for a URL without credentials.
func mirrorName(bare string) string {
	sum := sha256.Sum256([]byte(bare))
	return hex.EncodeToString(sum[:12]) + ".git"
}

// remote runs the git program against one repository's URL. Its
// credentials go to git in its environment, as an HTTP header (never in a
// command line, which other users of the machine can read, nor in a
// repository's config).
type remote struct {
	git   string
	url   string // credentials included (ssh's user stays in the URL)
	bare  string // without credentials
	shown string
	env   []string
}

// fetch fetches specs from the remote into repo. The URL given git is the
// bare one: the credentials are in the environment.
func (r *remote) fetch(ctx context.Context, repo string, opts []string, specs ...string) error {
	args := append([]string{"-C", repo, "fetch", "-q", "--no-write-fetch-head"}, opts...)
	args = append(append(args, r.bare), specs...)
	_, err := r.run(ctx, "downloading objects", args...)
	return err
}

// defaultBranch is the branch the remote's HEAD names.
func (r *remote) defaultBranch(ctx context.Context) (string, error) {
	out, err := r.run(ctx, "listing refs", "ls-remote", "--symref", r.bare, "HEAD")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "ref: refs/heads/"); ok {
			if name, _, ok := strings.Cut(rest, "\tHEAD"); ok {
				return name, nil
			}
		}
	}
	return "", &notFound{msg: fmt.Sprintf("no default branch in %s (is the repository empty?)", r.shown), is: ErrBranchNotFound}
}

// revParse names the object spec names in repo, in full.
func (r *remote) revParse(ctx context.Context, repo, spec string) (string, error) {
	out, err := r.run(ctx, "", "-C", repo, "rev-parse", "--verify", "-q", spec)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// notFoundOutput is what git prints when the remote has no such repository.
var notFoundOutput = regexp.MustCompile(`(?i)repository not found|does not appear to be a git repository|not found: .*repository|no such repository|could not read from remote repository`)

// authOutput is what git prints when the remote refuses its credentials.
var authOutput = regexp.MustCompile(`(?i)returned error: 40[13]|authentication failed|could not read (username|password)|permission denied \(publickey`)

// run runs git with args and returns its standard output; an error names
// what failed (op, when it is the remote's part) with git's own words,
// credentials scrubbed.
func (r *remote) run(ctx context.Context, op string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.git, args...)
	// Canceled, git goes with the helpers it started (git-remote-http,
	// ssh), which hold its output open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false", "LC_ALL=C")
	cmd.Env = append(cmd.Env, r.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	said := strings.TrimSpace(stderr.String())
	if said == "" {
		said = err.Error()
	}
	if ctx.Err() != nil {
		said = ctx.Err().Error() + " (" + said + ")"
	}
	remoteOp := op != ""
	if !remoteOp {
		op = "git " + args[min(2, len(args)-1)]
	}
	if remoteOp && authOutput.MatchString(said) {
		said = "authorization failed: " + said
	}
	msg := scrub(fmt.Sprintf("fetching %s: %s: %s", r.shown, op, said), r.url)
	if remoteOp && notFoundOutput.MatchString(said) {
		first, _, _ := strings.Cut(said, "\n")
		msg = scrub(fmt.Sprintf("fetching %s: repository not found (%s)", r.shown, first), r.url)
		return nil, &notFound{msg: msg, is: ErrRepositoryNotFound, err: err}
	}
	if ctx.Err() != nil {
		return nil, &scrubbed{msg: msg, err: ctx.Err()}
	}
	return nil, &scrubbed{msg: msg, err: err}
}

// credentialEnv passes the credentials of an http(s) URL to git as an
// Authorization header, in its environment, for that URL's origin only:
// a redirect or a submodule elsewhere never receives it.
func credentialEnv(u string) []string {
	bare, info := SplitCredentials(u)
	parsed, err := url.Parse(bare)
	if info == "" || err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return nil
	}
	origin := parsed.Scheme + "://" + parsed.Host + "/"
	user, pass, _ := strings.Cut(info, ":")
	basic := base64.StdEncoding.EncodeToString([]byte(unescape(user) + ":" + unescape(pass)))
	return []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http." + origin + ".extraHeader", "GIT_CONFIG_VALUE_0=Authorization: Basic " + basic}
}

// branchMissing says a branch is missing when git's failure says so.
func branchMissing(err error, branch, shown string) error {
	if errors.Is(err, ErrRepositoryNotFound) || !strings.Contains(err.Error(), "couldn't find remote ref") {
		return err
	}
	return &notFound{msg: fmt.Sprintf("branch %s not found in %s", branch, shown), is: ErrBranchNotFound, err: err}
}

// tagMissing says a tag is missing when git's failure says so.
func tagMissing(err error, tag, shown string) error {
	if errors.Is(err, ErrRepositoryNotFound) || !strings.Contains(err.Error(), "couldn't find remote ref") {
		return err
	}
	return &notFound{msg: fmt.Sprintf("tag %s not found in %s", tag, shown), is: ErrTagNotFound, err: err}
}
