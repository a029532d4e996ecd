// Package logarchive keeps build logs in two places: on the coordinator's
// disk (a logstore.Store) while their attempt runs, and compressed in the
// blob store once it has ended and Archive has moved them (format.go).
// Readers see one store: an attempt's logs are read from disk while they
// are there, from its archive after, byte for byte the same.
package logarchive

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
)

const (
	// readTimeout bounds the blob store's part of a read made without a
	// context (Size, Sizes, ReadAt).
	readTimeout = time.Minute
	// maxIndexes is how many archives' indexes are kept in memory, and
	// maxMembers how many bytes of unpacked members: a page of a merged
	// log reads many short records of a few members.
	maxIndexes = 4096
	maxMembers = 16 << 20
	// maxSealed is how many archived attempts are remembered, to refuse a
	// write that comes too late.
	maxSealed = 4096
	// followBuf is how much a follower passes on at a time, as on disk;
	// rangeBuf how much of a blob it reads at a time.
	followBuf = 256 << 10
	rangeBuf  = 1 << 20
)

// Key is the blob of an attempt's archive.
func Key(build string, attempt int) string {
	return "logs/" + build + "/" + strconv.Itoa(attempt) + ".gz"
}

type attemptKey struct {
	build   string
	attempt int
}

// memberKey names a member by what it holds: a stream only grows, so a
// member of a stream of a given size always holds the same bytes.
type memberKey struct {
	key  logstore.Key
	size int64
	i    int64
}

// Live is where the logs of running attempts are written: one
// coordinator's disk (logstore.Store), or the database that several share
// (pgstore.Logs).
type Live interface {
	Write(key logstore.Key, offset int64, data []byte) (int64, error)
	Size(key logstore.Key) (int64, error)
	Sizes(build string, attempt int) ([]logstore.Stream, error)
	ReadAt(key logstore.Key, offset int64, p []byte) (int, error)
	Follow(ctx context.Context, key logstore.Key, from int64, w io.Writer, ended <-chan struct{}) error
	// Attempts, Builds and WithLogs say which have logs (WithLogs: which
	// of the builds given, in one look); RemoveAttempt deletes an
	// attempt's once they are archived.
	Attempts(build string) ([]int, error)
	Builds() ([]string, error)
	WithLogs(builds []string) ([]string, error)
	RemoveAttempt(build string, attempt int) error
}

var _ Live = (*logstore.Store)(nil)

// Store reads and writes build logs wherever they are. It is safe for
// concurrent use.
type Store struct {
	disk  Live
	blobs blob.Store

	// locks, by attempt: reads and writes on disk hold one shared, the
	// moves off disk (Archive) alone.
	locks [64]sync.RWMutex

	mu sync.Mutex
	// gen counts the archives made: a lookup that began before one is
	// not cached, it may be stale.
	gen       uint64
	sealed    map[attemptKey]bool
	sealOrder []attemptKey
	indexes   *lru[attemptKey, *index] // nil: the attempt has no archive
	members   *lru[memberKey, []byte]

	// beforeRemove runs between an archive's check and the removal of
	// its files from disk: where a test makes the coordinator crash.
	beforeRemove func() error
}

// New reads and writes logs on disk, and in blobs once archived.
func New(disk Live, blobs blob.Store) *Store {
	return &Store{
		disk: disk, blobs: blobs, sealed: map[attemptKey]bool{},
		indexes: newLRU[attemptKey](maxIndexes, func(*index) int64 { return 1 }),
		members: newLRU[memberKey](maxMembers, func(b []byte) int64 { return int64(len(b)) }),
	}
}

func (s *Store) lock(build string, attempt int) *sync.RWMutex {
	h := fnv.New32a()
	h.Write([]byte(build))
	return &s.locks[(h.Sum32()+uint32(attempt))%uint32(len(s.locks))]
}

// Write stores a chunk of a running attempt's stream (logstore.Store's
// Write). An attempt that is archived, or being archived, takes none:
// its logs are whole.
func (s *Store) Write(key logstore.Key, offset int64, data []byte) (int64, error) {
	l := s.lock(key.Build, key.Attempt)
	l.RLock()
	defer l.RUnlock()
	if s.isSealed(key.Build, key.Attempt) {
		return 0, fmt.Errorf("log %s: the attempt ended and its logs are archived: %w", key, logstore.ErrRemoved)
	}
	return s.disk.Write(key, offset, data)
}

// Size returns a stream's stored size (0 when nothing is stored).
func (s *Store) Size(key logstore.Key) (int64, error) {
	if err := key.Validate(); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	var n int64
	x, here, err := s.read(ctx, key.Build, key.Attempt, func() (err error) {
		n, err = s.disk.Size(key)
		return err
	})
	if here || err != nil || x == nil {
		return n, err
	}
	if st := x.find(key); st != nil {
		return st.Size, nil
	}
	return 0, nil
}

// Sizes lists an attempt's streams with their sizes, ordered by job then
// stream.
func (s *Store) Sizes(build string, attempt int) ([]logstore.Stream, error) {
	if err := (logstore.Key{Build: build, Attempt: attempt, Stream: logstore.Stdout}).Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	var out []logstore.Stream
	x, here, err := s.read(ctx, build, attempt, func() (err error) {
		out, err = s.disk.Sizes(build, attempt)
		return err
	})
	if here || err != nil || x == nil {
		return out, err
	}
	for _, st := range x.Streams {
		out = append(out, logstore.Stream{Key: logstore.Key{Build: build, Attempt: attempt, Job: st.Job, Stream: st.Stream}, Size: st.Size})
	}
	return out, nil
}

// ReadAt reads stored bytes of a stream at offset into p, like
// io.ReaderAt.
func (s *Store) ReadAt(key logstore.Key, offset int64, p []byte) (int, error) {
	if err := key.Validate(); err != nil {
		return 0, err
	}
	if offset < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", logstore.ErrInvalid, offset)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	var n int
	x, here, err := s.read(ctx, key.Build, key.Attempt, func() (err error) {
		n, err = s.disk.ReadAt(key, offset, p)
		return err
	})
	if here || err != nil {
		return n, err
	}
	if x == nil {
		return 0, io.EOF // nothing stored
	}
	return s.readArchived(ctx, x, key, offset, p)
}

// read runs onDisk while the attempt's logs are on disk, keeping them
// there meanwhile (here); otherwise it returns the attempt's archive (nil
// when it has none: nothing was stored).
func (s *Store) read(ctx context.Context, build string, attempt int, onDisk func() error) (x *index, here bool, err error) {
	l := s.lock(build, attempt)
	l.RLock()
	here, err = s.onDisk(build, attempt)
	if here && err == nil {
		err = onDisk()
	}
	l.RUnlock()
	if here || err != nil {
		return nil, here, err
	}
	x, err = s.index(ctx, build, attempt)
	return x, false, err
}

func (s *Store) onDisk(build string, attempt int) (bool, error) {
	attempts, err := s.disk.Attempts(build)
	return slices.Contains(attempts, attempt), err
}

// Follow copies a stream to w from offset from on, then what is written
// after, until ended is closed and all is copied, or ctx ends
// (logstore.Store's Follow). An archived stream is whole: it is copied to
// its end and Follow returns. A stream archived while it is followed is
// followed on from its archive.
func (s *Store) Follow(ctx context.Context, key logstore.Key, from int64, w io.Writer, ended <-chan struct{}) error {
	if err := key.Validate(); err != nil {
		return err
	}
	if from < 0 {
		return fmt.Errorf("%w: negative offset %d", logstore.ErrInvalid, from)
	}
	var last error
	for try := 0; try < 3; try++ {
		here, err := s.onDisk(key.Build, key.Attempt)
		if err != nil {
			return err
		}
		if !here {
			x, err := s.index(ctx, key.Build, key.Attempt)
			if err != nil {
				return err
			}
			if x != nil {
				return s.followArchived(ctx, x, key, from, w)
			}
		}
		if try > 0 && last == nil {
			return nil // followed to its end on disk, where it still is
		}
		cw := &countWriter{w: w}
		last = s.disk.Follow(ctx, key, from, cw, ended)
		from += cw.n
		// Ended, or moved off disk: look again where it is.
		if last != nil && !errors.Is(last, logstore.ErrRemoved) {
			return last
		}
	}
	return last
}

// index returns an attempt's archive's index (nil: it has none).
func (s *Store) index(ctx context.Context, build string, attempt int) (*index, error) {
	k := attemptKey{build, attempt}
	if x, ok := s.indexes.get(k); ok {
		return x, nil
	}
	s.mu.Lock()
	gen := s.gen
	s.mu.Unlock()
	x, err := s.fetchIndex(ctx, Key(build, attempt))
	if err != nil {
		return nil, err
	}
	// No archive is not kept: another coordinator sharing the stores may
	// archive the attempt at any time, which this one never hears of.
	s.mu.Lock()
	if s.gen == gen && x != nil {
		s.indexes.put(k, x)
	}
	s.mu.Unlock()
	return x, nil
}

// fetchIndex reads an archive's index from the blob store (nil: no such
// blob).
func (s *Store) fetchIndex(ctx context.Context, key string) (*index, error) {
	f, err := openBlob(ctx, s.blobs, key)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading archived logs: %w", err)
	}
	defer f.close()
	x, err := readIndex(f, f.size)
	if err != nil {
		return nil, fmt.Errorf("reading archived logs %s: %w", key, err)
	}
	return x, nil
}

// readArchived reads an archived stream at off into p, like io.ReaderAt.
func (s *Store) readArchived(ctx context.Context, x *index, key logstore.Key, off int64, p []byte) (int, error) {
	st := x.find(key)
	if st == nil || off >= st.Size {
		return 0, io.EOF
	}
	var f *blobFile
	defer func() {
		if f != nil {
			f.close()
		}
	}()
	n := 0
	for n < len(p) && off+int64(n) < st.Size {
		pos := off + int64(n)
		i := pos / x.Chunk
		mk := memberKey{key, st.Size, i}
		data, ok := s.members.get(mk)
		if !ok {
			var err error
			if f == nil {
				if f, err = openBlob(ctx, s.blobs, Key(key.Build, key.Attempt)); err != nil {
					return n, fmt.Errorf("reading archived log %s: %w", key, err)
				}
			}
			if data, err = x.member(f, st, i); err != nil {
				return n, fmt.Errorf("reading archived log %s: %w", key, err)
			}
			s.members.put(mk, data)
		}
		n += copy(p[n:], data[pos-i*x.Chunk:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// followArchived copies an archived stream to w from offset from to its
// end.
func (s *Store) followArchived(ctx context.Context, x *index, key logstore.Key, from int64, w io.Writer) error {
	r, left, err := s.openStream(ctx, x, key, from)
	if err != nil {
		return err
	}
	defer r.Close()
	buf := make([]byte, min(left, followBuf))
	for left > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := io.ReadFull(r, buf[:min(left, int64(len(buf)))])
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			left -= int64(n)
		}
		if err != nil {
			return fmt.Errorf("reading archived log %s: %w", key, err)
		}
	}
	return nil
}

// openStream reads an archived stream from offset from to its end, which
// is left bytes on.
func (s *Store) openStream(ctx context.Context, x *index, key logstore.Key, from int64) (io.ReadCloser, int64, error) {
	st := x.find(key)
	if st == nil || from >= st.Size {
		return io.NopCloser(eofReader{}), 0, nil
	}
	f, err := openBlob(ctx, s.blobs, Key(key.Build, key.Attempt))
	if err != nil {
		return nil, 0, fmt.Errorf("reading archived log %s: %w", key, err)
	}
	i := from / x.Chunk
	end := st.At[len(st.At)-1]
	// Whole members from the one that holds from: a multistream gzip.
	zr, err := gzip.NewReader(bufio.NewReaderSize(io.NewSectionReader(f, st.At[i], end-st.At[i]), rangeBuf))
	if err == nil {
		_, err = io.CopyN(io.Discard, zr, from-i*x.Chunk)
	}
	if err != nil {
		f.close()
		return nil, 0, fmt.Errorf("reading archived log %s: %w", key, err)
	}
	left := st.Size - from
	return readCloser{io.LimitReader(zr, left), f.close}, left, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// blobFile reads a blob at offsets: through the reader its store gives
// where that can (a file; an S3 object, a ranged GET per read), else by
// getting the blob anew from its start for each read.
type blobFile struct {
	io.ReaderAt
	close func() error
	size  int64
}

func openBlob(ctx context.Context, blobs blob.Store, key string) (*blobFile, error) {
	rc, info, err := blobs.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if ra, ok := rc.(io.ReaderAt); ok {
		return &blobFile{ReaderAt: ra, close: rc.Close, size: info.Size}, nil
	}
	rc.Close()
	return &blobFile{ReaderAt: regetter{ctx, blobs, key}, close: func() error { return nil }, size: info.Size}, nil
}

// regetter reads a blob at an offset by reading it from its start.
type regetter struct {
	ctx   context.Context
	blobs blob.Store
	key   string
}

func (g regetter) ReadAt(p []byte, off int64) (int, error) {
	rc, _, err := g.blobs.Get(g.ctx, g.key)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	if _, err := io.CopyN(io.Discard, rc, off); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, io.EOF
		}
		return 0, err
	}
	n, err := io.ReadFull(rc, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	return n, err
}
