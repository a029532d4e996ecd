package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/monkeyci/monkeyci/agent/archive"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
)

// Where archives live on the agent's disk, all tar files of entries
// relative to the path a job declared (package archive):
//
//	<build dir>/artifacts/<id>.tar                 one build's artifacts
//	<CacheDir>/<repo hash>/<scope hash>/<id>.tar   caches, per repository and scope
//
// Hashed: repository keys are paths or URLs and scopes hold a branch's
// name, which no file name can hold without two of them meeting.

func (b *build) artifactFile(id string) string {
	return filepath.Join(b.dir, "artifacts", fileKey(id))
}

func (b *build) cacheFile(scope, id string) string {
	return CacheFile(b.r.cfg.CacheDir, b.spec.Repo, scope, id)
}

// CacheFile is where cache id of a repository's scope lives under cacheDir.
func CacheFile(cacheDir, repo, scope, id string) string {
	return filepath.Join(cacheDir, hashName(repo), hashName(scope), fileKey(id))
}

func hashName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}

// fileKey is the file of an artifact, cache or job id. Ids are checked
// where jobs are read (letters, digits, '.', '_', '-'), so they are file
// names already.
func fileKey(id string) string { return id + ".tar" }

// saveArchive copies containerPath out of container id into file (written
// atomically, so a failed save never leaves half a cache), its entries
// relative to containerPath.
func saveArchive(ctx context.Context, rt Runtime, id, containerPath, file string) error {
	rc, err := rt.CopyFrom(ctx, id, containerPath)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".save-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := archive.Relative(tmp, rc); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// restoreArchive places file at dest (absolute) in container id, and only
// there: the whole archive is checked before the engine sees a byte of
// it, so a refused entry (archive.RefusedError) leaves nothing behind. A
// missing file is reported with errNoArchive.
func restoreArchive(ctx context.Context, rt Runtime, id, file, dest string) error {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return errNoArchive
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := archive.Place(io.Discard, f, dest); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(archive.Place(pw, f, dest)) }()
	err = rt.CopyTo(ctx, id, "/", pr)
	pr.Close() // ends the writer if the engine stopped reading
	if err != nil {
		return fmt.Errorf("copying into the container: %w", err)
	}
	return nil
}

var errNoArchive = errors.New("nothing saved under that id")

// containerPath resolves a declared path (relative, checked by
// pipeline.ArchivePath) against the job's work dir.
func containerPath(workDir, p string) string {
	return path.Join(workDir, p)
}

// CacheScope says which caches a build reads and writes: it writes Scope
// only, and reads Fallback for a cache Scope does not hold yet. The
// coordinator decides it (coordinator.CacheScopeOf).
type CacheScope struct{ Scope, Fallback string }

// LocalScope is the scope of builds nobody gave one (monkeyci run).
const LocalScope = "local"

func (b *build) cacheScope() CacheScope {
	if b.spec.Cache.Scope == "" {
		return CacheScope{Scope: LocalScope}
	}
	return b.spec.Cache
}

// restore puts the job's artifacts and caches in place before it starts,
// each only under the path the job declares for it, and says where each
// cache came from. A cache missing from the build's scope is read from
// its fallback scope, if it has one.
func (b *build) restore(id string, j pipeline.Job, workDir string) ([]events.Cache, error) {
	rt := b.r.cfg.Runtime
	for _, a := range j.RestoreArtifacts {
		err := restoreArchive(b.jobsCtx, rt, id, b.artifactFile(a.ID), containerPath(workDir, a.Path))
		if errors.Is(err, errNoArchive) {
			return nil, fmt.Errorf("artifact %q was not saved by any job that ran before", a.ID)
		}
		if err != nil {
			return nil, fmt.Errorf("restoring artifact %q: %w", a.ID, err)
		}
	}
	scope := b.cacheScope()
	var caches []events.Cache
	for _, c := range j.Caches {
		got := events.Cache{ID: c.ID, Scope: scope.Scope}
		for _, from := range []string{scope.Scope, scope.Fallback} {
			if from == "" {
				continue
			}
			err := restoreArchive(b.jobsCtx, rt, id, b.cacheFile(from, c.ID), containerPath(workDir, c.Path))
			if errors.Is(err, errNoArchive) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("restoring cache %q from %s: %w", c.ID, from, err)
			}
			got.From = from
			break
		}
		caches = append(caches, got)
	}
	return caches, nil
}

// save keeps the job's artifacts and, when it succeeded, its caches in the
// build's own scope (never its fallback). It returns what went wrong, in
// words, or "".
func (b *build) save(id string, j pipeline.Job, workDir string, succeeded bool) string {
	ctx, rt := context.WithoutCancel(b.jobsCtx), b.r.cfg.Runtime
	var problems []string
	for _, a := range j.SaveArtifacts {
		err := saveArchive(ctx, rt, id, containerPath(workDir, a.Path), b.artifactFile(a.ID))
		switch {
		case errors.Is(err, ErrPathNotFound):
			problems = append(problems, fmt.Sprintf("artifact %q: %s does not exist after the job", a.ID, containerPath(workDir, a.Path)))
		case err != nil:
			problems = append(problems, fmt.Sprintf("saving artifact %q from %s: %v", a.ID, a.Path, err))
		}
	}
	if succeeded {
		scope := b.cacheScope().Scope
		for _, c := range j.Caches {
			if err := saveArchive(ctx, rt, id, containerPath(workDir, c.Path), b.cacheFile(scope, c.ID)); err != nil {
				b.r.cfg.Logger.Warn("could not save cache", "job", j.ID, "cache", c.ID, "scope", scope, "error", err)
			}
		}
	}
	return strings.Join(problems, "; ")
}
