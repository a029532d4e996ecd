// Package source fetches the exact commit of a build's repository into a
// directory, for the agent to copy into the build's workspace: by way of a
// mirror per repository with the git program (Mirrors), or straight with
// go-git where the agent has no git (Fetch).
//
// Remote URLs (https, ssh, git) use go-git's own transports. Plain local paths
// and file:// URLs use go-git's file transport, which runs the git-upload-pack
// program of an installed git: a local source needs git on the agent's PATH.
package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Source names what to fetch.
type Source struct {
	// URL is a clone URL (https://, ssh://, git://, user@host:path), a file://
	// URL or a plain local path to a bare or non-bare repository.
	URL string
	// Branch is the branch to check out when Commit is empty; empty means the
	// remote's default branch (its HEAD). With Commit set, Branch only says
	// where to look first: the commit is checked out even if the branch does
	// not hold it (or does not exist).
	Branch string
	// Commit, when set, is the commit to check out (detached): a full or
	// abbreviated (at least 4 hex digits) object name.
	Commit string
	// Tag, when set and Commit is not, is the tag whose commit is checked
	// out (detached), before Branch. With Commit set, the tag only says
	// what the build is of (a webhook's tag push carries both).
	Tag string
	// Depth, when set, is how many commits of history to fetch (the
	// repository's setting; 0 all of it); else the fetcher's default.
	Depth *int
	// SSHKey, when set, is the private key (a deploy key) an ssh:// or
	// user@host:path URL is fetched with, its submodules too. Only the
	// git program uses it (Mirrors.Fetch); Fetch (go-git) refuses it.
	SSHKey string
	// Tell, if set, receives what the build's people should know of the
	// fetch (a damaged mirror replaced), in a line.
	Tell func(line string)
	// Link asks Mirrors.Fetch to make the directory a link to a worktree
	// held for the build (whose workspace then lies over it) rather than
	// a folder of its own; Fetch (go-git) leaves it aside.
	Link bool
}

// Errors that Fetch's errors match with errors.Is: they say the source does
// not hold what was asked, so retrying the fetch will not help.
var (
	ErrRepositoryNotFound = errors.New("repository not found")
	ErrBranchNotFound     = errors.New("branch not found")
	ErrCommitNotFound     = errors.New("commit not found")
	ErrTagNotFound        = errors.New("tag not found")
)

const remoteName = "origin"

// shallowDepth is how many commits a shallow fetch brings: the commit and
// its parents, whose trees say which files the commit changed (Changes).
// On a small repository the second commit costs next to nothing; it
// brings only the objects the commit changed.
const shallowDepth = 2

// Fetch makes dir (which must be missing or empty) a git repository whose
// HEAD and working tree are the commit asked by src, and returns that commit's
// full object name.
//
// With src.Commit set, exactly that commit is checked out, detached; with
// src.Tag set instead, the tag's commit, detached. Without either, the head
// of src.Branch (or of the remote's default branch) is checked out on a
// local branch of the same name. The fetch is shallow (the commit and its
// parents, shallowDepth) whenever the transport allows it; a commit that is
// no branch or tag head, from a server that refuses to send an arbitrary
// commit, takes a full fetch.
//
// The working tree holds the files of the commit, never a local source's
// uncommitted changes. Credentials embedded in the URL are used but never
// appear in errors nor in the new repository's configuration. On error, what
// Fetch wrote into dir is removed.
func Fetch(ctx context.Context, src Source, dir string) (commit string, err error) {
	want, err := src.check()
	if err != nil {
		return "", err
	}
	shown := Redact(src.URL)
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("fetching %s: %w", shown, err)
	}
	if src.SSHKey != "" {
		return "", fmt.Errorf("fetching %s: a deploy key needs the git program on the agent, and this one has none (install git, or fetch over https with a token)", shown)
	}

	cleanup, err := prepareDir(dir)
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", shown, err)
	}
	defer func() {
		if err != nil {
			cleanup()
		}
	}()

	f := &fetcher{
		src:   src,
		url:   endpointURL(src.URL),
		shown: shown,
		want:  want,
	}
	f.repo, err = git.PlainInit(dir, false)
	if err != nil {
		return "", f.errorf("creating repository in %s: %w", dir, err)
	}
	// An unsaved remote: the URL, credentials included, stays in memory.
	f.remote = git.NewRemote(f.repo.Storer, &config.RemoteConfig{
		Name: remoteName,
		URLs: []string{f.url},
	})
	if err := f.saveConfig(); err != nil {
		return "", err
	}

	var hash plumbing.Hash
	if want != "" || src.Tag != "" {
		var refs []*plumbing.Reference
		if refs, err = f.list(ctx); err == nil && want == "" {
			err = f.findTag(refs)
		}
		if err == nil {
			hash, err = f.fetchCommit(ctx, refs)
		}
		if err == nil {
			err = f.checkoutDetached(ctx, hash)
		}
	} else {
		var branch string
		branch, hash, err = f.fetchBranch(ctx)
		if err == nil {
			err = f.checkoutBranch(ctx, branch, hash)
		}
	}
	if err != nil {
		return "", err
	}
	return hash.String(), nil
}

// check says what is wrong with src before anything is fetched, and
// returns the commit asked in lower case ("" for none).
func (src Source) check() (want string, err error) {
	if src.URL == "" {
		return "", errors.New("fetching source: empty repository URL")
	}
	shown := Redact(src.URL)
	if want, err = parseCommit(src.Commit); err != nil {
		return "", fmt.Errorf("fetching %s: %w", shown, err)
	}
	// Names git would take for options are refused too.
	if src.Branch != "" && (strings.HasPrefix(src.Branch, "refs/") || strings.HasPrefix(src.Branch, "-") ||
		plumbing.NewBranchReferenceName(src.Branch).Validate() != nil) {
		return "", fmt.Errorf("fetching %s: invalid branch name %q", shown, src.Branch)
	}
	if src.Tag != "" && (strings.HasPrefix(src.Tag, "refs/") || strings.HasPrefix(src.Tag, "-") ||
		plumbing.NewTagReferenceName(src.Tag).Validate() != nil) {
		return "", fmt.Errorf("fetching %s: invalid tag name %q", shown, src.Tag)
	}
	if strings.HasPrefix(src.URL, "-") {
		return "", fmt.Errorf("fetching %s: a repository URL cannot start with '-'", shown)
	}
	return want, nil
}

type fetcher struct {
	src    Source
	url    string // for go-git: credentials included, local paths absolute
	shown  string // for people: credentials redacted
	want   string // lower-case hex, full or abbreviated; empty for a branch
	repo   *git.Repository
	remote *git.Remote
}

// depth is how many commits a shallow fetch brings: the repository's
// setting, else shallowDepth (0: all).
func (f *fetcher) depth() int {
	if f.src.Depth != nil {
		return *f.src.Depth
	}
	return shallowDepth
}

// fetchBranch fetches the head of the asked branch, or of the remote's
// default branch, shallow.
func (f *fetcher) fetchBranch(ctx context.Context) (string, plumbing.Hash, error) {
	branch := f.src.Branch
	if branch == "" {
		refs, err := f.list(ctx)
		if err != nil {
			return "", plumbing.ZeroHash, err
		}
		head := findRef(refs, plumbing.HEAD)
		switch {
		case head == nil:
			return "", plumbing.ZeroHash, &notFound{
				msg: fmt.Sprintf("no default branch in %s (is the repository empty?)", f.shown),
				is:  ErrBranchNotFound,
			}
		case head.Type() == plumbing.SymbolicReference && head.Target().IsBranch():
			branch = head.Target().Short()
		default:
			// A detached HEAD (a local non-bare repository can have one):
			// its commit is the default.
			f.want = head.Hash().String()
			h, err := f.fetchCommit(ctx, refs)
			return "", h, err
		}
	}
	ref := plumbing.NewBranchReferenceName(branch)
	err := f.fetch(ctx, f.depth(), refSpec(ref))
	if errors.Is(err, errNoMatch) {
		return "", plumbing.ZeroHash, &notFound{
			msg: fmt.Sprintf("branch %s not found in %s", branch, f.shown),
			is:  ErrBranchNotFound,
		}
	}
	if err != nil {
		return "", plumbing.ZeroHash, err
	}
	r, err := f.repo.Storer.Reference(trackingRef(ref))
	if err != nil {
		return "", plumbing.ZeroHash, f.errorf("reading fetched branch %s: %w", branch, err)
	}
	return branch, r.Hash(), nil
}

// findTag makes the commit of the asked tag the one wanted.
func (f *fetcher) findTag(refs []*plumbing.Reference) error {
	name := plumbing.NewTagReferenceName(f.src.Tag)
	ref := findRef(refs, name+"^{}") // an annotated tag, peeled to its commit
	if ref == nil {
		ref = findRef(refs, name)
	}
	if ref == nil || ref.Type() != plumbing.HashReference {
		return &notFound{msg: fmt.Sprintf("tag %s not found in %s", f.src.Tag, f.shown), is: ErrTagNotFound}
	}
	f.want = ref.Hash().String()
	return nil
}

// fetchCommit fetches f.want in the cheapest way the remote allows:
//  1. a branch or tag whose head it is, shallow;
//  2. the commit itself, shallow, when the server lets a client want an
//     object that no ref points at (GitHub does; git-upload-pack by default,
//     which serves local repositories, does not);
//  3. every branch and tag in full, and then look for it.
func (f *fetcher) fetchCommit(ctx context.Context, refs []*plumbing.Reference) (plumbing.Hash, error) {
	if ref := refAt(refs, f.want, f.src.Branch); ref != "" {
		if err := f.fetch(ctx, f.depth(), refSpec(ref)); err != nil && !errors.Is(err, errNoMatch) {
			return plumbing.ZeroHash, err
		}
		// The ref may have moved since it was listed: look.
		if h, err := f.resolve(); err == nil {
			return h, nil
		}
	}
	if len(f.want) == 40 {
		spec := config.RefSpec(f.want + ":refs/monkeyci/commit")
		err := f.fetch(ctx, f.depth(), spec)
		if err == nil {
			if h, err := f.resolve(); err == nil {
				return h, nil
			}
		} else if ctx.Err() != nil {
			return plumbing.ZeroHash, err
		}
		// Refused (not supported, or no such commit): fetch everything.
	}
	err := f.fetch(ctx, 0,
		config.RefSpec("+refs/heads/*:refs/remotes/"+remoteName+"/*"),
		config.RefSpec("+refs/tags/*:refs/tags/*"))
	if err != nil && !errors.Is(err, errNoMatch) {
		return plumbing.ZeroHash, err
	}
	return f.resolve()
}

// list lists the remote's refs, annotated tags peeled.
func (f *fetcher) list(ctx context.Context) ([]*plumbing.Reference, error) {
	refs, err := f.remote.ListContext(ctx, &git.ListOptions{PeelingOption: git.AppendPeeled})
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return nil, nil
	}
	if err != nil {
		return nil, f.transportError(ctx, "listing refs", err)
	}
	return refs, nil
}

// infiniteDepth is the depth git's protocol takes for all of the history.
const infiniteDepth = 0x7fffffff

// errNoMatch says that the remote has none of the refs asked.
var errNoMatch = errors.New("no matching ref")

// fetch fetches refspecs at depth (0 for the full history). It returns
// errNoMatch when the remote has none of them.
func (f *fetcher) fetch(ctx context.Context, depth int, specs ...config.RefSpec) error {
	if depth == 0 {
		// A shallow repository (a mirror) is deepened to its roots as
		// git's --unshallow does it; without a depth it would stay cut.
		if shallow, _ := f.repo.Storer.Shallow(); len(shallow) > 0 {
			depth = infiniteDepth
		}
	}
	err := f.remote.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RefSpecs:   specs,
		Depth:      depth,
		Tags:       git.NoTags,
		Force:      true,
	})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	var noMatch git.NoMatchingRefSpecError
	if errors.As(err, &noMatch) || errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return errNoMatch
	}
	return f.transportError(ctx, "downloading objects", err)
}

// resolve finds the commit f.want among the fetched objects.
func (f *fetcher) resolve() (plumbing.Hash, error) {
	missing := &notFound{
		msg: fmt.Sprintf("commit %s not found in %s", f.want, f.shown),
		is:  ErrCommitNotFound,
	}
	var h plumbing.Hash
	if len(f.want) == 40 {
		h = plumbing.NewHash(f.want)
	} else {
		iter, err := f.repo.Storer.IterEncodedObjects(plumbing.CommitObject)
		if err != nil {
			return h, f.errorf("reading objects: %w", err)
		}
		var found []plumbing.Hash
		err = iter.ForEach(func(o plumbing.EncodedObject) error {
			if strings.HasPrefix(o.Hash().String(), f.want) {
				found = append(found, o.Hash())
			}
			return nil
		})
		if err != nil {
			return h, f.errorf("reading objects: %w", err)
		}
		switch len(found) {
		case 0:
			return h, missing
		case 1:
			h = found[0]
		default:
			return h, f.errorf("commit %s is ambiguous: %d commits start with it", f.want, len(found))
		}
	}
	c, err := f.repo.CommitObject(h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		// An annotated tag's name is accepted for its commit.
		if tag, terr := f.repo.TagObject(h); terr == nil {
			if c, err = tag.Commit(); err == nil {
				return c.Hash, nil
			}
		}
		return h, missing
	}
	if err != nil {
		return h, f.errorf("reading commit %s: %w", f.want, err)
	}
	return c.Hash, nil
}

func (f *fetcher) checkoutDetached(ctx context.Context, h plumbing.Hash) error {
	if err := ctx.Err(); err != nil {
		return f.errorf("checking out %s: %w", h, err)
	}
	w, err := f.repo.Worktree()
	if err != nil {
		return f.errorf("checking out %s: %w", h, err)
	}
	if err := w.Checkout(&git.CheckoutOptions{Hash: h, Force: true}); err != nil {
		return f.errorf("checking out %s: %w", h, err)
	}
	return nil
}

// checkoutBranch checks h out on a local branch (tracking the remote's) when
// branch is set, detached otherwise.
func (f *fetcher) checkoutBranch(ctx context.Context, branch string, h plumbing.Hash) error {
	if branch == "" {
		return f.checkoutDetached(ctx, h)
	}
	if err := ctx.Err(); err != nil {
		return f.errorf("checking out %s: %w", branch, err)
	}
	ref := plumbing.NewBranchReferenceName(branch)
	if err := f.repo.Storer.SetReference(plumbing.NewHashReference(ref, h)); err != nil {
		return f.errorf("creating branch %s: %w", branch, err)
	}
	cfg, err := f.repo.Config()
	if err == nil {
		cfg.Branches[branch] = &config.Branch{Name: branch, Remote: remoteName, Merge: ref}
		err = f.repo.SetConfig(cfg)
	}
	if err != nil {
		return f.errorf("configuring branch %s: %w", branch, err)
	}
	w, err := f.repo.Worktree()
	if err == nil {
		err = w.Checkout(&git.CheckoutOptions{Branch: ref, Force: true})
	}
	if err != nil {
		return f.errorf("checking out %s: %w", branch, err)
	}
	return nil
}

// saveConfig records origin in the new repository without credentials, so
// that git commands in the build (git remote -v, git fetch of a public
// repository) work and nothing secret reaches the build's workspace.
func (f *fetcher) saveConfig() error {
	cfg, err := f.repo.Config()
	if err != nil {
		return f.errorf("reading repository config: %w", err)
	}
	cfg.Remotes[remoteName] = &config.RemoteConfig{
		Name:  remoteName,
		URLs:  []string{stripCredentials(f.url)},
		Fetch: []config.RefSpec{config.RefSpec("+refs/heads/*:refs/remotes/" + remoteName + "/*")},
	}
	if err := f.repo.SetConfig(cfg); err != nil {
		return f.errorf("writing repository config: %w", err)
	}
	return nil
}

// transportError names the URL and what failed, and says so when the
// repository does not exist.
func (f *fetcher) transportError(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	msg := scrub(fmt.Sprintf("fetching %s: %s: %s", f.shown, op, strings.TrimSpace(err.Error())), f.src.URL)
	if errors.Is(err, transport.ErrRepositoryNotFound) {
		return &notFound{msg: msg, is: ErrRepositoryNotFound, err: err}
	}
	if errors.Is(err, exec.ErrNotFound) {
		msg += " (a local source needs git on the agent's PATH; an agent without it, as the docker pool's are, takes http(s) and ssh URLs)"
	}
	return &scrubbed{msg: msg, err: err}
}

// errorf prefixes "fetching URL: " and scrubs credentials from the message.
func (f *fetcher) errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &scrubbed{msg: scrub("fetching "+f.shown+": "+err.Error(), f.src.URL), err: errors.Unwrap(err)}
}

// scrubbed is an error whose message had credentials removed; it still
// unwraps to the original so errors.Is works (context.Canceled included).
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

type notFound struct {
	msg string
	is  error
	err error
}

func (e *notFound) Error() string        { return e.msg }
func (e *notFound) Is(target error) bool { return target == e.is }
func (e *notFound) Unwrap() error        { return e.err }

// git-upload-pack is given must not depend on its working directory);
// everything else goes to go-git as it is.
func endpointURL(u string) string {
	if strings.Contains(u, "://") {
		return u
	}
	if _, err := os.Stat(u); err == nil {
		if abs, err := filepath.Abs(u); err == nil {
			return abs
		}
	}
	return u
}

// prepareDir makes sure dir exists and is empty, and returns what removes
// whatever Fetch then put there.
func prepareDir(dir string) (cleanup func(), err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		return func() { os.RemoveAll(dir) }, nil
	case err != nil:
		return nil, err
	case len(entries) > 0:
		return nil, fmt.Errorf("directory %s is not empty", dir)
	}
	return func() {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}, nil
}
