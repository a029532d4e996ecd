package source

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/monkeyci/monkeyci/buildscript"
)

// An agent without the git program (the docker pool's minimal image)
// keeps its mirrors with go-git: the same bare repository in the same
// folder, fetched into with what it has as the fetch's haves, so only
// what it lacks comes. go-git keeps no worktrees: each checkout is a new
// repository in dir whose .git borrows the mirror's objects, as git's
// would, and whose files are written in full. Submodules and Git LFS
// files need git and git-lfs: such an agent leaves them out, and says so.

// snapshotGoGit is snapshot for an agent without git.
func (m *Mirrors) snapshotGoGit(ctx context.Context, src Source, want, repo, dir string) (string, error) {
	shown := Redact(src.URL)
	if src.SSHKey != "" {
		return "", fmt.Errorf("fetching %s: a deploy key needs the git program on the agent, and this one has none (install git, or fetch over https with a token)", shown)
	}
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return "", fmt.Errorf("fetching %s: %w", shown, err)
	}
	now := time.Now() // used: last to go
	_ = os.Chtimes(repo, now, now)
	depth := m.fetchDepth(repo, src)
	src.Depth = &depth
	f := &fetcher{src: src, url: endpointURL(src.URL), shown: shown, want: want}
	mirror := filepath.Join(repo, "mirror.git")
	if err := f.openMirror(mirror); err != nil {
		return "", err
	}

	var commit plumbing.Hash
	var branch string
	var refs []*plumbing.Reference
	var err error
	if want != "" || src.Tag != "" {
		if refs, err = f.list(ctx); err == nil && want == "" {
			err = f.findTag(refs)
		}
		if err == nil {
			commit, err = f.fetchCommit(ctx, refs)
		}
		branch = src.Branch
	} else {
		branch, commit, err = f.fetchBranch(ctx)
	}
	if err == nil {
		err = f.followTags(ctx, refs, depth)
	}
	if err == nil {
		err = f.pruneShallow()
	}
	if err != nil {
		return "", err
	}
	if err := f.checkoutBorrowing(ctx, mirror, dir, commit, branch); err != nil {
		return "", err
	}
	if err := m.deepenGoGit(ctx, f, mirror, dir, commit, branch); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, ".gitmodules")); err == nil && m.Log != nil {
		m.Log.Warn("the repository has submodules and this agent has no git: its checkout leaves them out", "url", shown)
	}
	if usesLFSAttributes(dir) && m.Log != nil {
		m.Log.Warn("the repository may have Git LFS files and this agent has no git-lfs: its checkout holds their pointers", "url", shown)
	}
	m.hold(dir, repo, "", false)
	return commit.String(), nil
}

// openMirror opens the bare repository mirror for f to fetch into (its
// refs are what f's fetches say the agent has), made when missing.
func (f *fetcher) openMirror(mirror string) error {
	r, err := git.PlainOpen(mirror)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		r, err = git.PlainInit(mirror, true)
	}
	if err != nil {
		return f.errorf("opening the mirror %s: %w", mirror, err)
	}
	f.repo = r
	f.remote = git.NewRemote(r.Storer, &config.RemoteConfig{Name: remoteName, URLs: []string{f.url}})
	return nil
}

// checkoutBorrowing makes dir (empty) a repository whose .git borrows
// mirror's objects and holds its shallow bounds and tags, origin without
// credentials, and branch (if any) at commit, and checks commit out there,
// detached.
func (f *fetcher) checkoutBorrowing(ctx context.Context, mirror, dir string, commit plumbing.Hash, branch string) error {
	if err := ctx.Err(); err != nil {
		return f.errorf("checking out %s: %w", commit, err)
	}
	own, err := git.PlainInit(dir, false)
	if err != nil {
		return f.errorf("creating repository in %s: %w", dir, err)
	}
	dotGit := filepath.Join(dir, ".git")
	if err := borrowObjects(dotGit, mirror); err != nil {
		return f.errorf("%w", err)
	}
	if err := copyShallow(mirror, dotGit); err != nil {
		return f.errorf("%w", err)
	}
	checkout := &fetcher{src: f.src, url: f.url, shown: f.shown, repo: own}
	if err := checkout.saveConfig(); err != nil {
		return err
	}
	tags, err := f.repo.Tags()
	if err != nil {
		return f.errorf("reading the mirror's tags: %w", err)
	}
	err = tags.ForEach(func(t *plumbing.Reference) error { return own.Storer.SetReference(t) })
	if err == nil && branch != "" {
		for _, ref := range []plumbing.ReferenceName{plumbing.NewBranchReferenceName(branch), plumbing.NewRemoteReferenceName(remoteName, branch)} {
			if err = own.Storer.SetReference(plumbing.NewHashReference(ref, commit)); err != nil {
				break
			}
		}
	}
	if err != nil {
		return f.errorf("writing refs in %s: %w", dir, err)
	}
	st, ok := own.Storer.(*filesystem.Storage)
	if !ok {
		return f.errorf("checking out %s: unexpected storage %T", commit, own.Storer)
	}
	r, err := git.Open(&borrowing{Storage: st, objects: f.repo.Storer}, osfs.New(dir))
	if err != nil {
		return f.errorf("checking out %s: %w", commit, err)
	}
	w, err := r.Worktree()
	if err == nil {
		err = w.Checkout(&git.CheckoutOptions{Hash: commit, Force: true})
	}
	if err != nil {
		return f.errorf("checking out %s: %w", commit, err)
	}
	return nil
}

// borrowing is a checkout's storage that reads objects from the mirror's
// storage. go-git follows objects/info/alternates too, but opens the
// mirror's packs again for each object it looks up there.
type borrowing struct {
	*filesystem.Storage
	objects storer.EncodedObjectStorer
}

func (b *borrowing) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	return b.objects.EncodedObject(t, h)
}

func (b *borrowing) HasEncodedObject(h plumbing.Hash) error { return b.objects.HasEncodedObject(h) }

func (b *borrowing) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	return b.objects.EncodedObjectSize(h)
}

func (b *borrowing) IterEncodedObjects(t plumbing.ObjectType) (storer.EncodedObjectIter, error) {
	return b.objects.IterEncodedObjects(t)
}

// deepenGoGit gives the checkout the history its script.yaml's depth
// asks when that is more than the mirror keeps, as deepen does with git.
func (m *Mirrors) deepenGoGit(ctx context.Context, f *fetcher, mirror, dir string, commit plumbing.Hash, branch string) error {
	sc, _ := buildscript.LoadConfig(dir)
	keep, more := m.asksMore(mirror, sc)
	if !more {
		return nil
	}
	spec := config.RefSpec(commit.String() + ":refs/monkeyci/commit")
	if branch != "" {
		spec = refSpec(plumbing.NewBranchReferenceName(branch))
	}
	if err := f.fetch(ctx, keep, spec); err != nil {
		return err
	}
	if err := f.pruneShallow(); err != nil {
		return err
	}
	if err := keepDepth(mirror, keep); err != nil {
		return f.errorf("%w", err)
	}
	return copyShallow(mirror, filepath.Join(dir, ".git"))
}

// followTags gives the mirror the remote's tags on commits it holds, as
// git's fetch does by itself: go-git follows tags only for a fetch of
// every branch. refs are the remote's refs, listed anew when nil; an
// annotated tag's object is fetched (its commit is here: nothing more).
func (f *fetcher) followTags(ctx context.Context, refs []*plumbing.Reference, depth int) error {
	if refs == nil {
		var err error
		if refs, err = f.list(ctx); err != nil {
			return err
		}
	}
	var missing []config.RefSpec
	for _, ref := range refs {
		name := ref.Name()
		if !name.IsTag() || strings.HasSuffix(name.String(), "^{}") || ref.Type() != plumbing.HashReference {
			continue
		}
		if name.Validate() != nil {
			continue // a name git would refuse: the remote's, not the build's to fail on
		}
		commit := ref.Hash()
		if peeled := findRef(refs, name+"^{}"); peeled != nil {
			commit = peeled.Hash()
		}
		if f.repo.Storer.HasEncodedObject(commit) != nil {
			continue // a tag of history the mirror does not hold
		}
		if f.repo.Storer.HasEncodedObject(ref.Hash()) != nil {
			missing = append(missing, refSpec(name))
			continue
		}
		if err := f.repo.Storer.SetReference(ref); err != nil {
			return f.errorf("writing tag %s: %w", name.Short(), err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return f.fetch(ctx, depth, missing...)
}

// pruneShallow drops from the mirror's shallow commits those whose
// parents it now holds: go-git adds the new bounds of a deeper fetch but
// keeps the old ones, and git would stop at them.
func (f *fetcher) pruneShallow() error {
	shallow, err := f.repo.Storer.Shallow()
	if err != nil || len(shallow) == 0 {
		return err
	}
	var keep []plumbing.Hash
	for _, h := range shallow {
		c, err := f.repo.CommitObject(h)
		if err != nil {
			keep = append(keep, h)
			continue
		}
		for _, p := range c.ParentHashes {
			if f.repo.Storer.HasEncodedObject(p) != nil {
				keep = append(keep, h)
				break
			}
		}
	}
	if len(keep) == len(shallow) {
		return nil
	}
	if err := f.repo.Storer.SetShallow(keep); err != nil {
		return f.errorf("writing the mirror's shallow commits: %w", err)
	}
	return nil
}

// answersGoGit asks the remote for its refs with go-git, and says why not
// when it does not answer.
func answersGoGit(ctx context.Context, src Source) error {
	f := &fetcher{src: src, url: endpointURL(src.URL), shown: Redact(src.URL)}
	f.remote = git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: remoteName, URLs: []string{f.url}})
	_, err := f.list(ctx)
	return err
}

// usesLFSAttributes says whether the checkout's top .gitattributes sends
// files through Git LFS's filter.
func usesLFSAttributes(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, ".gitattributes"))
	return err == nil && strings.Contains(string(b), "filter=lfs")
}
