package blob

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

	"github.com/monkeyci/monkeyci/internal/ctxio"
)

// Dir is a Store in a directory: each blob a file under objects/, its
// digest in the same place under sums/. Puts are written under tmp/ and
// renamed into place, so a reader never sees half of one.
type Dir struct {
	root string
}

// OpenDir makes (if need be) and opens a directory store, owner-only.
func OpenDir(root string) (*Dir, error) {
	for _, sub := range []string{"objects", "sums", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			return nil, fmt.Errorf("blob store %s: %w", root, err)
		}
	}
	return &Dir{root: root}, nil
}

func (d *Dir) path(tree, key string) string {
	return filepath.Join(d.root, tree, filepath.FromSlash(key))
}

// Put streams r to a temporary file, hashing it, and renames it in place.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	return d.put(ctx, key, r, Info{Size: -1})
}

// put is Put that, before the blob is in place, checks it against what its
// sender said: want's Size unless negative, its SHA256 unless empty.
func (d *Dir) put(ctx context.Context, key string, r io.Reader, want Info) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	tmp, err := os.CreateTemp(filepath.Join(d.root, "tmp"), "put-*")
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	defer os.Remove(tmp.Name()) // gone once renamed; left only by a failure
	h := newDigests()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxio.Reader(ctx, r))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	sum, crc := h.sums()
	if want.Size >= 0 && n != want.Size || want.SHA256 != "" && sum != want.SHA256 || want.CRC32C != "" && crc != want.CRC32C {
		return Info{}, &MismatchError{Key: key, Want: want, Got: Info{Size: n, SHA256: sum, CRC32C: crc}}
	}
	obj, sumFile := d.path("objects", key), d.path("sums", key)
	for _, p := range []string{obj, sumFile} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return Info{}, fmt.Errorf("put %s: %w", key, err)
		}
	}
	// The digest first: a blob is never seen with another blob's digest
	// for longer than the rename between them.
	if err := writeFileAtomic(sumFile, []byte(sumText(Info{SHA256: sum, CRC32C: crc}))); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), obj); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	st, err := os.Stat(obj)
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	return Info{Key: key, Size: n, SHA256: sum, CRC32C: crc, Modified: st.ModTime()}, nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".sum-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Get opens the blob's file.
func (d *Dir) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	info, err := d.Stat(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(d.path("objects", key))
	if err != nil {
		return nil, Info{}, d.notFound(key, err)
	}
	return f, info, nil
}

// Stat reads the blob's file size and its digest.
func (d *Dir) Stat(ctx context.Context, key string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	st, err := os.Stat(d.path("objects", key))
	if err != nil || !st.Mode().IsRegular() {
		return Info{}, d.notFound(key, err)
	}
	text, _ := os.ReadFile(d.path("sums", key))
	sum, crc := parseSum(string(text))
	return Info{Key: key, Size: st.Size(), SHA256: sum, CRC32C: crc, Modified: st.ModTime()}, nil
}

func (d *Dir) notFound(key string, err error) error {
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", key, ErrNotFound)
	}
	return fmt.Errorf("blob %s: %w", key, err)
}

// List walks the objects under prefix's folder.
func (d *Dir) List(ctx context.Context, prefix string) ([]Info, error) {
	objects := filepath.Join(d.root, "objects")
	var out []Info
	err := filepath.WalkDir(objects, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(objects, p)
		key := filepath.ToSlash(rel)
		if e.IsDir() {
			// Walk only the folders that can hold keys with the prefix.
			if key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() || !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Stat(ctx, key)
		if err != nil {
			return nil // removed meanwhile
		}
		out = append(out, info)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blobs %q: %w", prefix, err)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete removes the blob and its digest.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	for _, p := range []string{d.path("objects", key), d.path("sums", key)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete blob %s: %w", key, err)
		}
	}
	return nil
}

// Sweep removes what Puts cut short by a killed process left in tmp/.
func (d *Dir) Sweep(ctx context.Context) error {
	tmp := filepath.Join(d.root, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("sweep %s: %w", tmp, err)
	}
	cutoff := time.Now().Add(-stagedGrace)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.ModTime().Before(cutoff) {
			_ = os.Remove(filepath.Join(tmp, e.Name()))
		}
	}
	return nil
}
