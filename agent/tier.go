package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// castagnoli is CRC32C's table: what checks a download's bytes (sha256 is
// what names them).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// An archive file on the agent's disk has its sha256 beside it, in
// FILE.sha256: what says, without reading the archive, whether it is the
// one the fleet's store holds.
const sumSuffix = ".sha256"

// writeArchive writes what fill writes to file, atomically (a failed or
// canceled write leaves the old file, or none), and its digest beside
// it. With want, what was written must have want's size and digest, or
// nothing is kept.
func writeArchive(file string, want *ArchiveInfo, fill func(io.Writer) error) (ArchiveInfo, error) {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return ArchiveInfo{}, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".save-*")
	if err != nil {
		return ArchiveInfo{}, err
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	h, crc := sha256.New(), crc32.New(castagnoli)
	counted := &countWriter{w: io.MultiWriter(tmp, h, crc)}
	err = fill(counted)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ArchiveInfo{}, err
	}
	got := ArchiveInfo{Size: counted.n, SHA256: hex.EncodeToString(h.Sum(nil)), CRC32C: fmt.Sprintf("%08x", crc.Sum32())}
	if want != nil && (got.Size != want.Size || got.SHA256 != want.SHA256) {
		return ArchiveInfo{}, fmt.Errorf("received %d bytes with sha256 %s, expected %d bytes with sha256 %s", got.Size, got.SHA256, want.Size, want.SHA256)
	}
	if digestOf(file) == got.SHA256 {
		// The same bytes as the file already holds (a cache the job did
		// not change): the old file stays, warm in the page cache and
		// where it lies on disk; the new one goes.
		now := time.Now()
		_ = os.Chtimes(file, now, now)
		return got, nil
	}
	// The old digest goes first: it must never stand beside new bytes.
	if err := os.Remove(file + sumSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ArchiveInfo{}, err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return ArchiveInfo{}, err
	}
	return got, os.WriteFile(file+sumSuffix, []byte(got.SHA256), 0o644)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// digestOf is the digest kept beside an archive file, "" when the file or
// its digest is missing.
func digestOf(file string) string {
	if _, err := os.Stat(file); err != nil {
		return ""
	}
	b, err := os.ReadFile(file + sumSuffix)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// tier is the agent's own store of caches, in front of the fleet's: a
// file per repository, scope and cache (CacheFile), bounded in size, the
// least recently used going first. A file's time is when it was last
// used: written, or restored from.
type tier struct {
	dir string
	max int64 // bytes; 0: no bound
	mu  sync.Mutex
}

// used marks file as just used.
func (t *tier) used(file string) {
	now := time.Now()
	_ = os.Chtimes(file, now, now)
}

// trim removes the least recently used caches until the tier holds at
// most its bound. A cache being restored when it goes is read to its end
// all the same (its open file stays readable).
func (t *tier) trim() (removed int, err error) {
	if t.max <= 0 {
		return 0, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	type entry struct {
		path string
		size int64
		used time.Time
	}
	var all []entry
	var total int64
	err = filepath.WalkDir(t.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".tar") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		all = append(all, entry{p, info.Size(), info.ModTime()})
		total += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sizing the cache dir: %w", err)
	}
	slices.SortFunc(all, func(a, b entry) int { return a.used.Compare(b.used) })
	for _, e := range all {
		if total <= t.max {
			break
		}
		os.Remove(e.path + sumSuffix)
		if err := os.Remove(e.path); err == nil {
			total -= e.size
			removed++
		}
	}
	return removed, nil
}
