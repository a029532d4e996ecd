package agent

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/agent/archive"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/ctxio"
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
	return CacheFile(b.r.tier.dir, b.spec.Repo, scope, id)
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

// Blobs keeps a build's archives beyond this agent, in the fleet's blob
// store (package link reaches it through the coordinator), so that the
// next build finds its caches on whichever agent it runs, and an
// artifact outlives the agent that made it. Nil: this agent's disk only.
type Blobs interface {
	// Open reads an archive (ErrNoArchive when none was saved). Its bytes
	// are fetched from the first Read: one closed unread costs nothing.
	Open(ctx context.Context, a ArchiveRef) (io.ReadCloser, ArchiveInfo, error)
	// Save stores the archive in file, whose size and digest are info.
	// It has counted as saved once Save returns nil.
	Save(ctx context.Context, a ArchiveRef, file string, info ArchiveInfo) error
}

// ArchiveRef names an archive of the build: the coordinator decides what
// it means (which scope, which key).
type ArchiveRef struct {
	Kind ArchiveKind
	// ID is the artifact's or cache's id; a cache keyed by files has the
	// digest of their content after an '@'.
	ID string
	// Fallback reads a cache of the build's fallback scope.
	Fallback bool
	// FromBuild reads an artifact of an earlier build of the repository.
	FromBuild string
}

// ArchiveKind is an artifact or a cache.
type ArchiveKind string

// Archive kinds.
const (
	KindArtifact ArchiveKind = "artifact"
	KindCache    ArchiveKind = "cache"
)

// ArchiveInfo is an archive's size and sha256 (hex).
type ArchiveInfo struct {
	Size   int64
	SHA256 string
	// CRC32C (Castagnoli, hex) checks fetched bytes for a tenth of
	// sha256's work; "": they are checked by SHA256.
	CRC32C string
}

// ErrNoArchive is Blobs.Open's answer for an archive nobody saved.
var ErrNoArchive = errors.New("nothing saved under that id")

// saveArchive copies containerPath out of container id into file (written
// atomically, so a failed save never leaves half a cache), its entries
// relative to containerPath.
func saveArchive(ctx context.Context, rt Runtime, id, containerPath, file string) (ArchiveInfo, error) {
	rc, err := rt.CopyFrom(ctx, id, containerPath)
	if err != nil {
		return ArchiveInfo{}, err
	}
	defer rc.Close()
	return writeArchive(file, nil, func(w io.Writer) error { return archive.Relative(w, rc) })
}

// fetchArchive reads an archive of the fleet's store into file, unless
// file already holds it (the same digest): it reports whether it read.
func fetchArchive(ctx context.Context, blobs Blobs, a ArchiveRef, file string) (fetched bool, err error) {
	rc, info, err := blobs.Open(ctx, a)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	if digestOf(file) == info.SHA256 {
		return false, nil
	}
	_, err = writeArchive(file, &info, func(w io.Writer) error {
		_, err := io.Copy(w, rc)
		return err
	})
	return err == nil, err
}

// placeFetched gives what rc holds, an archive of info's size and digest,
// to place as it arrives, checking on the way that it is what info says.
// The bytes are checked by their CRC32C when the store knows it (the
// sha256 the store checked them by when they were saved names them;
// computing it again here would cost the restore a tenth of its time).
func placeFetched(rc io.Reader, info ArchiveInfo, place func(io.Reader) error) error {
	var h hash.Hash = sha256.New()
	algo, want := "sha256", info.SHA256
	if info.CRC32C != "" {
		h, algo, want = crc32.New(castagnoli), "crc32c", info.CRC32C
	}
	counted := &countWriter{w: h}
	if err := tee(rc, counted, place); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); counted.n != info.Size || got != want {
		return fmt.Errorf("received %d bytes with %s %s, expected %d bytes with %s %s", counted.n, algo, got, info.Size, algo, want)
	}
	return nil
}

// tee copies r to consume, writing each chunk to w (a digest) on its
// way; it returns once consume has ended, with the first error of any.
// A goroutine of its own feeds consume, up to teeChunks chunks behind
// the reader, through buffers used again and again.
func tee(r io.Reader, w io.Writer, consume func(io.Reader) error) error {
	pr, pw := io.Pipe()
	consumed := make(chan error, 1)
	go func() {
		// Buffered: consume reads a chunk at a time, not a tar's pieces.
		err := consume(bufio.NewReaderSize(pr, pipeBuffer))
		if err == nil {
			_, err = io.Copy(io.Discard, pr) // what consume left (a tar's padding)
		}
		pr.CloseWithError(cmp.Or(err, errConsumerDone)) // a feed still writing stops
		consumed <- err
	}()
	free, full := make(chan []byte, teeChunks), make(chan []byte, teeChunks)
	for range teeChunks {
		free <- make([]byte, teeChunk)
	}
	stopped := make(chan struct{}) // the feed failed: reading on is pointless
	fed := make(chan error, 1)
	go func() {
		var err error
		for c := range full {
			if err == nil {
				if _, err = pw.Write(c); err != nil {
					close(stopped)
				}
			}
			free <- c[:cap(c)]
		}
		fed <- err
	}()
	var err error
	for err == nil {
		var buf []byte
		select {
		case buf = <-free:
		case <-stopped:
		}
		if buf == nil {
			break
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if _, err = w.Write(buf[:n]); err == nil {
				full <- buf[:n]
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		err = cmp.Or(err, rerr)
	}
	close(full)
	ferr := <-fed
	pw.CloseWithError(cmp.Or(err, ferr))
	return cmp.Or(<-consumed, err)
}

// A tee keeps at most teeChunks chunks of teeChunk bytes waiting for each
// feed; the pipes between the steps of a restore carry pipeBuffer bytes
// at a time.
const (
	pipeBuffer = 1 << 20
	teeChunk   = 1 << 20
	teeChunks  = 16
)

var errConsumerDone = errors.New("the reader ended")

// placeArchive places what r holds (a tar of entries relative to the
// path a job declared) at dest in container id, and only there: an entry
// that would leave dest is refused (archive.RefusedError) and ends the
// copy, what came before it staying in the container.
func placeArchive(ctx context.Context, rt Runtime, id string, r io.Reader, dest string) error {
	pr, pw := io.Pipe()
	go func() {
		// Buffered: the engine's client takes large pieces, not each
		// header and 32 KB copy of Place's.
		bw := bufio.NewWriterSize(pw, pipeBuffer)
		err := archive.Place(bw, r, dest)
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	err := rt.CopyTo(ctx, id, "/", pr)
	pr.Close() // ends the writer if the engine stopped reading
	if err != nil {
		return fmt.Errorf("copying into the container: %w", err)
	}
	return nil
}

// restoreArchive places file at dest (absolute) in container id, and only
// there: the whole archive is checked before the engine sees a byte of
// it, so a refused entry (archive.RefusedError) leaves nothing behind. A
// missing file is reported with ErrNoArchive.
func restoreArchive(ctx context.Context, rt Runtime, id, file, dest string) error {
	f, err := openArchive(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := checkArchive(ctx, f, dest); err != nil {
		return err
	}
	return placeArchive(ctx, rt, id, fromStart(f), dest)
}

// openArchive opens file (ErrNoArchive: there is none). Its check and its
// placing read the one open file: a file put in its place meanwhile (a
// build saving the cache) is never placed unchecked.
func openArchive(file string) (*os.File, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoArchive
	}
	return f, err
}

// checkArchive reads f through, from its start, as Place would place it
// at dest, and says what it refuses.
func checkArchive(ctx context.Context, f io.ReaderAt, dest string) error {
	return archive.Place(io.Discard, ctxio.Reader(ctx, fromStart(f)), dest)
}

// fromStart reads f from its start, apart from any other reader of it.
func fromStart(f io.ReaderAt) io.Reader { return io.NewSectionReader(f, 0, math.MaxInt64) }

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
	ctx, rt := b.jobsCtx, b.r.cfg.Runtime
	for _, a := range j.RestoreArtifacts {
		file, err := b.artifact(ctx, a.ID, a.Build)
		if err == nil {
			err = restoreArchive(ctx, rt, id, file, containerPath(workDir, a.Path))
		}
		switch {
		case errors.Is(err, ErrNoArchive) && a.Build != "":
			return nil, fmt.Errorf("artifact %q: build %s of this repository saved none", a.ID, a.Build)
		case errors.Is(err, ErrNoArchive):
			return nil, fmt.Errorf("artifact %q was not saved by any job that ran before", a.ID)
		}
		if err != nil {
			return nil, fmt.Errorf("restoring artifact %q: %w", a.ID, err)
		}
	}
	scope := b.cacheScope()
	var caches []events.Cache
	for _, c := range j.Caches {
		got, err := b.restoreCache(ctx, id, c, workDir, scope)
		if err != nil {
			return nil, err
		}
		caches = append(caches, got)
	}
	return caches, nil
}

// restoreCache restores one cache from the build's scope, or else its
// fallback, and says from where, how large and how fast.
func (b *build) restoreCache(ctx context.Context, id string, c pipeline.Artifact, workDir string, scope CacheScope) (events.Cache, error) {
	got := events.Cache{ID: c.ID, Scope: scope.Scope}
	if len(c.KeyFiles) > 0 {
		key, err := cacheKey(ctx, b.r.cfg.Runtime, id, workDir, c.KeyFiles)
		if err != nil {
			return got, fmt.Errorf("cache %q: %w", c.ID, err)
		}
		got.Key = key
	}
	name := cacheName(c, got.Key)
	for _, from := range []string{scope.Scope, scope.Fallback} {
		if from == "" {
			continue
		}
		start := time.Now()
		size, fetched, err := b.placeCache(ctx, id, from, from == scope.Fallback, name, containerPath(workDir, c.Path))
		if errors.Is(err, ErrNoArchive) {
			continue
		}
		if err != nil {
			return got, fmt.Errorf("restoring cache %q from %s: %w", c.ID, from, err)
		}
		got.From, got.Fetched, got.Took, got.Size = from, fetched, time.Since(start), size
		break
	}
	return got, nil
}

// artifact is the file of an artifact of the build, or of an earlier
// build of the repository: on this agent's disk, or fetched from the
// fleet's store (ErrNoArchive: in neither).
func (b *build) artifact(ctx context.Context, id, fromBuild string) (string, error) {
	file := b.artifactFile(id)
	if fromBuild != "" {
		if !pipeline.ValidID(fromBuild) {
			return "", fmt.Errorf("artifact %q: %q is not a build's id", id, fromBuild)
		}
		if b.spec.Blobs == nil {
			return "", fmt.Errorf("artifact %q of build %s: only a coordinator keeps earlier builds' artifacts", id, fromBuild)
		}
		file = filepath.Join(b.dir, "artifacts", "builds", fromBuild, fileKey(id))
	}
	if _, err := os.Stat(file); err == nil || b.spec.Blobs == nil {
		return file, nil // restoreArchive says when it is missing
	}
	if _, err := fetchArchive(ctx, b.spec.Blobs, ArchiveRef{Kind: KindArtifact, ID: id, FromBuild: fromBuild}, file); err != nil {
		return "", err
	}
	return file, nil
}

// placeCache places cache id of the scope at dest in the container, and
// says how large it is and whether it was fetched. The agent's tier's
// copy is placed when it is the store's (the same digest), checked whole
// first; else the store's goes into the container as it arrives, checked
// on the way: a download cut short, or an entry refused, fails the job
// (the container holds part of the cache). A fetched cache is not kept
// on the way: the job's save keeps what it leaves. ErrNoArchive: none.
func (b *build) placeCache(ctx context.Context, container, scope string, fallback bool, id, dest string) (size int64, fetched bool, err error) {
	file, rt := b.cacheFile(scope, id), b.r.cfg.Runtime
	tierDigest := digestOf(file)
	f, err := openArchive(file)
	if err != nil && !errors.Is(err, ErrNoArchive) {
		return 0, false, err
	}
	if f != nil {
		defer f.Close()
	}
	// The tier's copy is checked while the store is asked for its digest:
	// it is most often the store's, and the question's round trip is then
	// no part of the restore's time.
	checkCtx, stop := context.WithCancel(ctx)
	defer stop()
	checked := make(chan error, 1)
	if f != nil {
		go func() { checked <- checkArchive(checkCtx, f, dest) }()
	}
	if b.spec.Blobs != nil {
		rc, info, err := b.spec.Blobs.Open(ctx, ArchiveRef{Kind: KindCache, ID: id, Fallback: fallback})
		switch {
		case errors.Is(err, ErrNoArchive):
			return 0, false, err
		case err != nil:
			// A cache only saves time: the job runs without it.
			b.r.cfg.Logger.Warn("could not fetch a cache; the job runs without it", "build", b.spec.ID, "cache", id, "scope", scope, "error", err)
			return 0, false, ErrNoArchive
		}
		defer rc.Close()
		b.noteStored(file, info.SHA256)
		if f == nil || tierDigest != info.SHA256 {
			stop()
			place := func(r io.Reader) error { return placeArchive(ctx, rt, container, r, dest) }
			if err := placeFetched(rc, info, place); err != nil {
				return 0, false, fmt.Errorf("fetching it: %w", err)
			}
			return info.Size, true, nil
		}
	}
	if f == nil {
		return 0, false, ErrNoArchive
	}
	b.r.tier.used(file)
	if err := <-checked; err != nil {
		return 0, false, err
	}
	if err := placeArchive(ctx, rt, container, fromStart(f), dest); err != nil {
		return 0, false, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, false, err
	}
	return st.Size(), false, nil
}

// noteStored notes that the fleet's store holds, for the cache whose
// tier file is file, an archive of that digest.
func (b *build) noteStored(file, digest string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stored == nil {
		b.stored = map[string]string{}
	}
	b.stored[file] = digest
}

// isStored says whether the fleet's store holds a file of that digest.
func (b *build) isStored(file, digest string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stored[file] == digest
}

// save keeps the job's artifacts and, when it succeeded, its caches in the
// build's own scope (never its fallback): on this agent's disk, and in
// the fleet's store. It returns what went wrong, in words, or "".
func (b *build) save(id string, j pipeline.Job, workDir string, succeeded bool, restored []events.Cache) string {
	ctx, rt := context.WithoutCancel(b.jobsCtx), b.r.cfg.Runtime
	var problems []string
	for _, a := range j.SaveArtifacts {
		file := b.artifactFile(a.ID)
		info, err := saveArchive(ctx, rt, id, containerPath(workDir, a.Path), file)
		if err == nil && b.spec.Blobs != nil {
			err = b.spec.Blobs.Save(ctx, ArchiveRef{Kind: KindArtifact, ID: a.ID}, file, info)
		}
		switch {
		case errors.Is(err, ErrPathNotFound):
			problems = append(problems, fmt.Sprintf("artifact %q: %s does not exist after the job", a.ID, containerPath(workDir, a.Path)))
		case err != nil:
			problems = append(problems, fmt.Sprintf("saving artifact %q from %s: %v", a.ID, a.Path, err))
		}
	}
	if succeeded {
		scope := b.cacheScope().Scope
		keys := map[string]string{}
		for _, c := range restored {
			keys[c.ID] = c.Key
		}
		for _, c := range j.Caches {
			name := cacheName(c, keys[c.ID]) // keyed as it was before the job ran
			file := b.cacheFile(scope, name)
			info, err := saveArchive(ctx, rt, id, containerPath(workDir, c.Path), file)
			switch {
			case err != nil || b.spec.Blobs == nil:
			case b.isStored(file, info.SHA256):
				// Unchanged since it was restored: the store has it.
				b.r.cfg.Logger.Debug("cache unchanged: not uploaded", "job", j.ID, "cache", c.ID, "scope", scope)
			default:
				err = b.spec.Blobs.Save(ctx, ArchiveRef{Kind: KindCache, ID: name}, file, info)
			}
			if err != nil {
				b.r.cfg.Logger.Warn("could not save cache", "job", j.ID, "cache", c.ID, "scope", scope, "error", err)
			} else if max := b.r.tier.max; max > 0 && info.Size > max {
				// The trim below removes it: say why a build finds none here.
				b.r.cfg.Logger.Warn("a cache is larger than this agent's --cache-size: the agent does not keep it (the fleet's store does, if there is one)",
					"job", j.ID, "cache", c.ID, "bytes", info.Size, "cache-size", max)
			}
		}
		b.trimTier()
	}
	return strings.Join(problems, "; ")
}

// trimTier keeps the agent's caches within their bound.
func (b *build) trimTier() {
	if n, err := b.r.tier.trim(); err != nil {
		b.r.cfg.Logger.Warn("could not trim the cache dir", "error", err)
	} else if n > 0 {
		b.r.cfg.Logger.Debug("removed the least recently used caches", "count", n)
	}
}
