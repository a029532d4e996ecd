package logarchive

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/monkeyci/monkeyci/coordinator/logstore"
)

// An attempt's archive is one blob, a gzip file of many members (zcat
// reads it: every stream, then the index):
//
//	the streams, in the order of their index, each in members of at most
//	chunkSize bytes of output, so a read at an offset unpacks one member;
//	the index, one member: JSON, where each stream's members start;
//	the trailer, an empty member whose header's extra field holds where
//	the index starts (subfield "MI", 8 bytes big-endian): fixed in size,
//	so a reader finds it from the blob's size.

// chunkSize is how much of a stream one member holds: a page of the
// dashboard (64 KiB) unpacks at most two.
const chunkSize = 256 << 10

// maxIndex bounds the index a reader takes (some 60,000 members).
const maxIndex = 16 << 20

// errCorrupt: a blob is not an archive of logs, or not a whole one.
var errCorrupt = errors.New("not a log archive")

// index says what an archive holds and where.
type index struct {
	Version int           `json:"version"`
	Chunk   int64         `json:"chunk"`
	Streams []streamIndex `json:"streams"`
	// Size is the blob's, not stored: known from the blob.
	Size int64 `json:"-"`
}

// streamIndex is one stream of an archive.
type streamIndex struct {
	Job    string `json:"job,omitempty"`
	Stream string `json:"stream"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// At are the offsets of the stream's members in the blob, then the
	// end of its last one.
	At []int64 `json:"at"`
}

// find returns the key's stream (nil: the archive has none).
func (x *index) find(key logstore.Key) *streamIndex {
	for i := range x.Streams {
		if st := &x.Streams[i]; st.Job == key.Job && st.Stream == key.Stream {
			return st
		}
	}
	return nil
}

// source is a stream to archive: its key, size and bytes.
type source struct {
	key  logstore.Key
	size int64
	open func() (io.ReadCloser, error)
}

// countWriter counts what goes through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeArchive writes the archive of sources to w, in their order, and
// returns its index and the blob's sha256.
func writeArchive(w io.Writer, sources []source) (*index, string, error) {
	sum := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, sum)}
	zw := gzip.NewWriter(cw)
	x := &index{Version: 1, Chunk: chunkSize}
	for _, src := range sources {
		st, err := writeStream(cw, zw, src)
		if err != nil {
			return nil, "", fmt.Errorf("archiving log %s: %w", src.key, err)
		}
		x.Streams = append(x.Streams, st)
	}
	at := cw.n
	zw.Reset(cw)
	if err := json.NewEncoder(zw).Encode(x); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	if _, err := cw.Write(trailer(at)); err != nil {
		return nil, "", err
	}
	x.Size = cw.n
	return x, hex.EncodeToString(sum.Sum(nil)), nil
}

// writeStream writes one stream's members and returns its entry.
func writeStream(cw *countWriter, zw *gzip.Writer, src source) (streamIndex, error) {
	st := streamIndex{Job: src.key.Job, Stream: src.key.Stream, Size: src.size, At: []int64{cw.n}}
	r, err := src.open()
	if err != nil {
		return st, err
	}
	defer r.Close()
	sum := sha256.New()
	for left := src.size; left > 0; {
		n := min(left, chunkSize)
		zw.Reset(cw)
		if _, err := io.CopyN(zw, io.TeeReader(r, sum), n); err != nil {
			return st, fmt.Errorf("%d of %d bytes read: %w", src.size-left, src.size, err)
		}
		if err := zw.Close(); err != nil {
			return st, err
		}
		left -= n
		st.At = append(st.At, cw.n)
	}
	st.SHA256 = hex.EncodeToString(sum.Sum(nil))
	return st, nil
}

// trailer is the last member: where the index starts.
func trailer(at int64) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Header.Extra = binary.BigEndian.AppendUint64([]byte{'M', 'I', 8, 0}, uint64(at))
	_ = zw.Close() // into memory: cannot fail
	return b.Bytes()
}

// trailerLen is the trailer's size, whatever it says: made once, when
// first asked (a gzip writer at every process's start would cost every
// monkeyci command, the build scripts' included, a millisecond).
var trailerLen = sync.OnceValue(func() int64 { return int64(len(trailer(0))) })

// readIndex reads the index of an archive of size bytes.
func readIndex(r io.ReaderAt, size int64) (*index, error) {
	trailerSize := trailerLen()
	if size < trailerSize {
		return nil, fmt.Errorf("%w: %d bytes", errCorrupt, size)
	}
	tail := make([]byte, trailerSize)
	if err := readFull(r, tail, size-trailerSize); err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(tail))
	if err != nil {
		return nil, fmt.Errorf("%w: trailer: %w", errCorrupt, err)
	}
	extra := zr.Header.Extra
	if _, err := io.Copy(io.Discard, zr); err != nil || len(extra) != 12 || string(extra[:4]) != "MI\x08\x00" {
		return nil, fmt.Errorf("%w: no trailer", errCorrupt)
	}
	at := int64(binary.BigEndian.Uint64(extra[4:]))
	end := size - trailerSize
	if at < 0 || at >= end || end-at > maxIndex {
		return nil, fmt.Errorf("%w: index at %d of %d", errCorrupt, at, size)
	}
	body := make([]byte, end-at)
	if err := readFull(r, body, at); err != nil {
		return nil, err
	}
	zr, err = gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: index: %w", errCorrupt, err)
	}
	x := &index{Size: size}
	if err := json.NewDecoder(io.LimitReader(zr, maxIndex)).Decode(x); err != nil {
		return nil, fmt.Errorf("%w: index: %w", errCorrupt, err)
	}
	if err := x.check(at); err != nil {
		return nil, err
	}
	return x, nil
}

// check says whether the index holds together: members in order, within
// the streams' part of the blob (which ends at end), as many as the
// streams' sizes need.
func (x *index) check(end int64) error {
	if x.Version != 1 || x.Chunk <= 0 {
		return fmt.Errorf("%w: version %d, members of %d bytes", errCorrupt, x.Version, x.Chunk)
	}
	last := int64(0)
	for _, st := range x.Streams {
		key := logstore.Key{Build: "b", Attempt: 1, Job: st.Job, Stream: st.Stream}
		members := (st.Size + x.Chunk - 1) / x.Chunk
		if key.Validate() != nil || st.Size < 0 || int64(len(st.At)) != members+1 {
			return fmt.Errorf("%w: stream %q/%q of %d bytes in %d members", errCorrupt, st.Job, st.Stream, st.Size, len(st.At)-1)
		}
		for _, at := range st.At {
			if at < last || at > end {
				return fmt.Errorf("%w: stream %q/%q: a member at %d", errCorrupt, st.Job, st.Stream, at)
			}
			last = at
		}
	}
	return nil
}

// member returns the bytes of a stream's member i: chunk bytes, fewer in
// its last.
func (x *index) member(r io.ReaderAt, st *streamIndex, i int64) ([]byte, error) {
	packed := make([]byte, st.At[i+1]-st.At[i])
	if err := readFull(r, packed, st.At[i]); err != nil {
		return nil, err
	}
	want := min(x.Chunk, st.Size-i*x.Chunk)
	zr, err := gzip.NewReader(bytes.NewReader(packed))
	if err != nil {
		return nil, fmt.Errorf("%w: member %d of %q/%q: %w", errCorrupt, i, st.Job, st.Stream, err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, want+1))
	if err != nil || int64(len(data)) != want {
		return nil, fmt.Errorf("%w: member %d of %q/%q: %d bytes, want %d (%v)", errCorrupt, i, st.Job, st.Stream, len(data), want, err)
	}
	return data, nil
}

// readFull reads len(p) bytes at off.
func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = fmt.Errorf("%w: %d bytes at %d, want %d", errCorrupt, n, off, len(p))
	}
	return err
}
