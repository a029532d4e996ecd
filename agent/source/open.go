package source

import (
	"path/filepath"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Open opens the repository whose worktree is dir, following its
// objects/info/alternates (a checkout of the agent's mirror borrows the
// mirror's objects there), which go-git's PlainOpen does not.
func Open(dir string) (*git.Repository, error) {
	dotGit := osfs.New(filepath.Join(dir, ".git"))
	storage := filesystem.NewStorageWithOptions(dotGit, cache.NewObjectLRUDefault(), filesystem.Options{AlternatesFS: osfs.New("/")})
	return git.Open(storage, osfs.New(dir))
}
