// Package blob keeps the fleet's large files (artifacts, caches, the logs
// of ended builds) under keys, in one of three backends chosen by URL: a
// directory (file://), an S3-compatible bucket (s3://) or OCI Object
// Storage (oci://). Every call streams: no blob is ever held in memory.
package blob

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"
	"time"
)

// Info is what a store knows of a blob.
type Info struct {
	Key  string
	Size int64
	// SHA256 is the hex digest of the blob's bytes, as computed when it
	// was put ("" when the backend was not told it).
	SHA256 string
	// CRC32C (Castagnoli, hex) checks a download's bytes for a tenth of
	// sha256's work ("" when not known: check with SHA256).
	CRC32C   string
	Modified time.Time
}

// digests computes a blob's SHA256 and CRC32C as it is written.
type digests struct {
	sha hash.Hash
	crc hash.Hash32
}

func newDigests() *digests {
	return &digests{sha: sha256.New(), crc: crc32.New(crc32.MakeTable(crc32.Castagnoli))}
}

func (d *digests) Write(p []byte) (int, error) {
	d.sha.Write(p)
	return d.crc.Write(p)
}

func (d *digests) sums() (sha, crc string) {
	return hex.EncodeToString(d.sha.Sum(nil)), fmt.Sprintf("%08x", d.crc.Sum32())
}

// sumText is what a blob's digest file holds: its sha256, and its CRC32C
// after a space when known.
func sumText(i Info) string {
	if i.CRC32C == "" {
		return i.SHA256
	}
	return i.SHA256 + " " + i.CRC32C
}

// parseSum reads a digest file (sumText).
func parseSum(text string) (sha, crc string) {
	f := strings.Fields(text)
	switch len(f) {
	case 0:
		return "", ""
	case 1:
		return f[0], ""
	}
	return f[0], f[1]
}

// Store keeps blobs under keys. Keys are slash-separated paths of
// CheckKey's form. Every method is safe for concurrent use. A Put is
// atomic: a reader sees the whole new blob or the old one, never a part,
// and a Put cut short leaves nothing under the key.
type Store interface {
	// Put stores what r yields under key, replacing any blob there, and
	// returns its size and digest.
	Put(ctx context.Context, key string, r io.Reader) (Info, error)
	// Get opens the blob under key (ErrNotFound).
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Stat says what is under key (ErrNotFound).
	Stat(ctx context.Context, key string) (Info, error)
	// List returns the blobs whose keys start with prefix, by key.
	List(ctx context.Context, prefix string) ([]Info, error)
	// Delete removes the blob under key; removing what is gone is not an
	// error.
	Delete(ctx context.Context, key string) error
}

// ErrNotFound is returned (wrapped) for a key that holds no blob.
var ErrNotFound = errors.New("no such blob")

// CheckKey refuses a key that could leave its store's folder or mean two
// things: it must be a relative slash-separated path of names of up to
// 255 bytes, with no empty, "." or ".." name, no backslash, no control
// character, at most 1024 bytes in all.
func CheckKey(key string) error {
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("blob key %.64q: must be 1 to 1024 bytes", key)
	}
	for _, name := range strings.Split(key, "/") {
		switch {
		case name == "" || name == "." || name == "..":
			return fmt.Errorf("blob key %.64q: empty, \".\" or \"..\" name", key)
		case len(name) > 255:
			return fmt.Errorf("blob key %.64q: a name longer than 255 bytes", key)
		}
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("blob key %.64q: control character or backslash", key)
		}
	}
	return nil
}
