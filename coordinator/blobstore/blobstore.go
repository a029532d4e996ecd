// Package blobstore keeps artifacts and caches as blobs under keys.
//
// Store is the interface; Dir keeps blobs as files under a directory (the
// embedded default, docs/architecture.md, Storage). An object store (S3, OCI) can
// implement the same interface later: keys are valid object names, List
// takes a plain string prefix, and Put replaces a blob whole.
//
// A key is a slash-separated path of segments, each made of letters,
// digits, '.', '_' and '-' and not "." or "..": "artifacts/b42/report.html".
// Keys have no leading, trailing or doubled slashes, at most 1024 bytes and
// segments of at most 200 bytes.
package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Errors, wrapped with details.
var (
	ErrNotFound   = errors.New("blob not found")
	ErrInvalidKey = errors.New("invalid blob key")
)

// Limits of keys.
const (
	MaxKey     = 1024
	MaxSegment = 200
)

// Info describes a stored blob.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Store keeps blobs under keys. Implementations are safe for concurrent use.
type Store interface {
	// Put stores what r yields under key, replacing any blob there. It is
	// atomic: if it fails (r fails, ctx ends, the disk fills) the key keeps
	// its former blob, or none; readers never see part of a blob.
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens the blob under key (ErrNotFound). The caller closes it.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat describes the blob under key (ErrNotFound).
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the blob under key; deleting a missing blob is not an
	// error (as in object stores).
	Delete(ctx context.Context, key string) error
	// List describes the blobs whose keys start with prefix (a plain string
	// prefix: "a/b" matches "a/b", "a/bc" and "a/b/c"), ordered by key.
	List(ctx context.Context, prefix string) ([]Info, error)
}

// ValidKey reports whether key is a valid blob key (ErrInvalidKey if not).
func ValidKey(key string) error {
	if key == "" || len(key) > MaxKey {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if err := validSegment(seg); err != nil {
			return fmt.Errorf("%w: %q: %v", ErrInvalidKey, key, err)
		}
	}
	return nil
}

func validSegment(seg string) error {
	switch {
	case seg == "":
		return errors.New("empty segment")
	case seg == "." || seg == "..":
		return fmt.Errorf("segment %q", seg)
	case len(seg) > MaxSegment:
		return fmt.Errorf("segment longer than %d bytes", MaxSegment)
	}
	if i := strings.IndexFunc(seg, func(r rune) bool { return !segmentChar(r) }); i >= 0 {
		return fmt.Errorf("character %q", seg[i:i+1])
	}
	return nil
}

func segmentChar(r rune) bool {
	return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-'
}

// blobSuffix ends the name of every blob file. It holds a character keys
// cannot, so the blob "a" (file "a~") and the blobs under "a/" (directory
// "a") live side by side, as in an object store.
const blobSuffix = "~"

// Dir is a Store keeping blobs as files under a directory:
//
//	ROOT/blobs/SEG/.../LAST~   the blob under SEG/.../LAST
//	ROOT/tmp/                  blobs being written
//
// Put writes a temporary file, syncs it and renames it into place. Several
// processes may share a Dir's root.
type Dir struct {
	root string
}

var _ Store = (*Dir)(nil)

// Open opens (creating it if needed) the blob store under root, removing
// temporary files a crash left behind.
func Open(root string) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	d := &Dir{root: abs}
	for _, dir := range []string{d.blobs(), d.tmp()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	entries, err := os.ReadDir(d.tmp())
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
			// Old enough not to be another process's Put in progress.
			os.Remove(filepath.Join(d.tmp(), e.Name()))
		}
	}
	return d, nil
}

// Root returns the store's root directory.
func (d *Dir) Root() string { return d.root }

func (d *Dir) blobs() string { return filepath.Join(d.root, "blobs") }
func (d *Dir) tmp() string   { return filepath.Join(d.root, "tmp") }

// path is the file of a valid key.
func (d *Dir) path(key string) string {
	return filepath.Join(d.blobs(), filepath.FromSlash(key)+blobSuffix)
}

// Put implements Store.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (err error) {
	if err := ValidKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.CreateTemp(d.tmp(), "put-*")
	if err != nil {
		return fmt.Errorf("blob %s: %w", key, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("blob %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("blob %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("blob %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	dst := d.path(key)
	// A concurrent Delete may remove the parent directory once it is
	// empty, during MkdirAll (which then fails with "file exists") or
	// between MkdirAll and Rename: try again then.
	for try := 0; ; try++ {
		if err = os.MkdirAll(filepath.Dir(dst), 0o755); err == nil {
			err = os.Rename(tmp, dst)
		}
		if err == nil || try == 10 || !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("blob %s: %w", key, err)
	}
	syncDir(filepath.Dir(dst))
	return nil
}

// ctxReader stops a copy once its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// Get implements Store. The blob returned is an *os.File: it can also
// seek and read at offsets (for HTTP range requests). A blob replaced or
// deleted while open reads on as it was.
func (d *Dir) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := ValidKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(d.path(key))
	if err != nil {
		return nil, notFound(key, err)
	}
	return f, nil
}

func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("blob %s: %w", key, err)
}

// Stat implements Store.
func (d *Dir) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidKey(key); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(d.path(key))
	if err != nil {
		return Info{}, notFound(key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements Store. Directories left empty are removed.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := ValidKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	p := d.path(key)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", key, err)
	}
	// Prune empty parents up to the blobs directory; Remove fails on a
	// directory that is not empty, which ends the pruning.
	for dir := filepath.Dir(p); dir != d.blobs() && strings.HasPrefix(dir, d.blobs()); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break
		}
	}
	return nil
}

// List implements Store.
func (d *Dir) List(ctx context.Context, prefix string) ([]Info, error) {
	// The directory to walk is the prefix's complete segments; its last,
	// partial segment filters names.
	dirKey, partial := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirKey, partial = prefix[:i], prefix[i+1:]
		if err := ValidKey(dirKey); err != nil {
			return nil, fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
		}
	}
	if len(prefix) > MaxKey || strings.IndexFunc(partial, func(r rune) bool { return !segmentChar(r) }) >= 0 {
		return nil, fmt.Errorf("%w: prefix %q", ErrInvalidKey, prefix)
	}
	dir := d.blobs()
	if dirKey != "" {
		dir = filepath.Join(dir, filepath.FromSlash(dirKey))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("blob store: %w", err)
	}
	var out []Info
	join := func(name string) string {
		if dirKey == "" {
			return name
		}
		return dirKey + "/" + name
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := e.Name()
		if !strings.HasPrefix(name, partial) {
			continue
		}
		switch {
		case e.Type().IsRegular():
			seg, ok := strings.CutSuffix(name, blobSuffix)
			if !ok || validSegment(seg) != nil {
				continue
			}
			if info, err := e.Info(); err == nil {
				out = append(out, Info{Key: join(seg), Size: info.Size(), ModTime: info.ModTime()})
			}
		case e.IsDir():
			if validSegment(name) != nil {
				continue
			}
			more, err := d.walk(ctx, join(name))
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		}
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// walk lists every blob under the directory of a key prefix (a complete
// one: "a/b" lists "a/b/...").
func (d *Dir) walk(ctx context.Context, dirKey string) ([]Info, error) {
	var out []Info
	root := filepath.Join(d.blobs(), filepath.FromSlash(dirKey))
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if e.IsDir() {
			if validSegment(e.Name()) != nil {
				return fs.SkipDir
			}
			return nil
		}
		seg, ok := strings.CutSuffix(e.Name(), blobSuffix)
		if !e.Type().IsRegular() || !ok || validSegment(seg) != nil {
			return nil
		}
		rel, err := filepath.Rel(d.blobs(), filepath.Join(filepath.Dir(p), seg))
		if err != nil {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return nil // deleted meanwhile
		}
		out = append(out, Info{Key: filepath.ToSlash(rel), Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	return out, nil
}
