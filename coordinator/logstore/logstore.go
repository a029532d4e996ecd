// Package logstore keeps build logs as files addressed by byte offset.
//
// Every output stream of a build attempt (one per job and per stream, "out"
// or "err"; job "" is the script container) is one file under the store's
// root:
//
//	ROOT/builds/BUILD/ATTEMPT/STREAM.log       the script container
//	ROOT/builds/BUILD/ATTEMPT/STREAM-JOB.log   job JOB
//
// Writes are idempotent by offset (docs/architecture.md, The fleet protocol): an agent sends chunks
// with the offset of their first byte, the store keeps each byte once and
// answers with the stream's stored size, which the coordinator acknowledges.
// After a reconnect the agent resends from the acknowledged offset; bytes
// already stored are skipped.
//
// # Crash semantics
//
// Write returns once its bytes are in the file (written with pwrite into
// the operating system's page cache), without an fsync. So:
//
//   - If the coordinator process dies (kill -9, panic), every byte Write
//     reported as stored is in the file. A write cut short leaves the file
//     shorter, never with a hole: bytes go in at the end only.
//   - After a restart the stored size of a stream is the size of its file
//     (Size, Sizes), which is what the coordinator must acknowledge; the agent
//     resends from there.
//   - If the machine loses power, the tail written since the last Sync may be
//     lost (the file comes back shorter, or on some file systems with a
//     zeroed tail, which the store cannot tell). Call Sync on a stream before
//     acknowledging its size to make the acknowledged bytes survive that too;
//     batching acknowledgements keeps the fsyncs few.
//
// One Store must own a root at a time: two Stores (or processes) writing the
// same root are not coordinated.
package logstore

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// MaxChunk is the largest chunk Write takes.
const MaxChunk = 1 << 20

// DefaultMaxOpen is how many stream files a Store keeps open at most
// (beyond those in use at the moment).
const DefaultMaxOpen = 256

// Errors, wrapped with details.
var (
	// ErrGap means a chunk starts past the stream's stored size: bytes in
	// between are missing. Nothing was stored; resend from the stored size.
	ErrGap = errors.New("gap in log stream")
	// ErrTooLarge means a chunk is larger than MaxChunk.
	ErrTooLarge = errors.New("log chunk too large")
	// ErrInvalid means a key or an offset is not valid.
	ErrInvalid = errors.New("invalid log key")
	// ErrRemoved means the build's logs were removed while in use.
	ErrRemoved = errors.New("log removed")
	// ErrClosed means the Store is closed.
	ErrClosed = errors.New("log store closed")
)

// Store keeps log streams under a root directory. It is safe for concurrent
// use: writes to different streams run in parallel, writes to one stream
// are serialised.
type Store struct {
	root    string // absolute
	maxOpen int

	mu      sync.Mutex
	streams map[Key]*stream // streams in use or with an open file
	lru     list.List       // of *stream with an open file, most recent first
	closed  bool
	done    chan struct{} // closed by Close
}

// Open opens (creating it if needed) the store under root.
func Open(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	// Builds' output may hold what their secrets let them fetch: the
	// coordinator's user alone reads it (0700 directories, 0600 files).
	if err := os.MkdirAll(filepath.Join(abs, "builds"), 0o700); err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	// Finish removals a crash cut short.
	if err := os.RemoveAll(filepath.Join(abs, "trash")); err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	return &Store{
		root:    abs,
		maxOpen: DefaultMaxOpen,
		streams: make(map[Key]*stream),
		done:    make(chan struct{}),
	}, nil
}

// SetMaxOpen sets how many stream files the store keeps open when idle
// (DefaultMaxOpen by default). Call it before using the store.
func (s *Store) SetMaxOpen(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxOpen = max(n, 1)
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.root }

func (s *Store) buildDir(build string) string {
	return filepath.Join(s.root, "builds", build)
}

func (s *Store) attemptDir(build string, attempt int) string {
	return filepath.Join(s.buildDir(build), strconv.Itoa(attempt))
}

// Write stores data at offset of the key's stream and returns the stream's
// stored size after the write: the offset to acknowledge.
//
// Write is idempotent: bytes already stored are skipped (a resend after a
// reconnect), so a chunk overlapping the end is appended from the end on,
// and a chunk wholly stored changes nothing. A chunk that starts past the
// end leaves a gap and is refused (ErrGap, with the stored size returned);
// one larger than MaxChunk is refused with ErrTooLarge. An empty chunk
// stores nothing and reports the size.
//
// Bytes are in the file when Write returns (see the package comment for
// crash semantics). If writing fails part way, the size returned counts
// the bytes that made it.
func (s *Store) Write(key Key, offset int64, data []byte) (int64, error) {
	if len(data) > MaxChunk {
		return 0, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, len(data), MaxChunk)
	}
	if offset < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrInvalid, offset)
	}
	st, err := s.acquire(key)
	if err != nil {
		return 0, err
	}
	defer s.release(st)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.load(); err != nil {
		return 0, fmt.Errorf("log %s: %w", key, err)
	}
	if st.isRemoved() {
		return 0, fmt.Errorf("log %s: %w", key, ErrRemoved)
	}
	size := st.size // only changed by holders of st.mu
	if offset > size {
		return size, fmt.Errorf("%w: %s: chunk at %d, stored %d", ErrGap, key, offset, size)
	}
	end := offset + int64(len(data))
	if end <= size {
		return size, nil
	}
	data = data[size-offset:]
	if err := s.open(st); err != nil {
		return size, fmt.Errorf("log %s: %w", key, err)
	}
	n, err := st.f.WriteAt(data, size)
	if n > 0 {
		st.grow(size + int64(n))
	}
	if err != nil {
		return size + int64(n), fmt.Errorf("log %s: %w", key, err)
	}
	return size + int64(n), nil
}

// Size returns the stored size of the key's stream (0 if nothing was
// stored). After a restart it is the size of the file on disk.
func (s *Store) Size(key Key) (int64, error) {
	st, err := s.acquire(key)
	if err != nil {
		return 0, err
	}
	defer s.release(st)
	return st.loadedSize()
}

// Sizes returns every stored stream of an attempt with its size, ordered by
// job then stream: what to acknowledge to an agent after a restart.
func (s *Store) Sizes(build string, attempt int) ([]Stream, error) {
	if err := (Key{Build: build, Attempt: attempt, Stream: Stdout}).Validate(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.attemptDir(build, attempt))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	var out []Stream
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		job, stream, ok := parseFileName(e.Name())
		if !ok {
			continue
		}
		key := Key{Build: build, Attempt: attempt, Job: job, Stream: stream}
		size, err := s.Size(key)
		if err != nil {
			return nil, err
		}
		out = append(out, Stream{Key: key, Size: size})
	}
	slices.SortFunc(out, func(a, b Stream) int {
		if c := strings.Compare(a.Job, b.Job); c != 0 {
			return c
		}
		return strings.Compare(a.Stream, b.Stream)
	})
	return out, nil
}

// Attempts returns the attempts of a build that have logs, in order.
func (s *Store) Attempts(build string) ([]int, error) {
	if err := validID("build", build); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.buildDir(build))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err == nil && n > 0 && e.IsDir() && strconv.Itoa(n) == e.Name() {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// WithLogs returns those of builds that have logs here.
func (s *Store) WithLogs(builds []string) ([]string, error) {
	var out []string
	for _, b := range builds {
		if validID("build", b) != nil {
			continue
		}
		_, err := os.Stat(s.buildDir(b))
		if err == nil {
			out = append(out, b)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("log store: %w", err)
		}
	}
	return out, nil
}

// ReadAt reads stored bytes of the key's stream at offset into p, like
// io.ReaderAt: it returns io.EOF when fewer than len(p) bytes are stored
// from offset on. Bytes past the stored size are never returned.
func (s *Store) ReadAt(key Key, offset int64, p []byte) (int, error) {
	if offset < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrInvalid, offset)
	}
	r, err := s.Reader(key)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return r.ReadAt(p, offset)
}

// Reader reads a stream as stored when Reader was called (later writes are
// not seen; use Follow for those).
type Reader struct {
	*io.SectionReader
	f *os.File
}

// Close closes the reader.
func (r *Reader) Close() error {
	if r.f == nil {
		return nil
	}
	return r.f.Close()
}

// Reader opens the key's stream for reading its bytes stored so far. A
// stream with nothing stored reads as empty.
func (s *Store) Reader(key Key) (*Reader, error) {
	st, err := s.acquire(key)
	if err != nil {
		return nil, err
	}
	defer s.release(st)
	size, err := st.loadedSize()
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return &Reader{SectionReader: io.NewSectionReader(eofReaderAt{}, 0, 0)}, nil
	}
	f, err := os.Open(st.path)
	if err != nil {
		return nil, fmt.Errorf("log %s: %w", key, err)
	}
	return &Reader{SectionReader: io.NewSectionReader(f, 0, size), f: f}, nil
}

type eofReaderAt struct{}

func (eofReaderAt) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }

// Sync flushes the key's stream to stable storage (fsync of the file and
// its directory), so its stored bytes survive a power loss. Write does not
// need it to survive a crash of the process.
func (s *Store) Sync(key Key) error {
	st, err := s.acquire(key)
	if err != nil {
		return err
	}
	defer s.release(st)
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.load(); err != nil {
		return err
	}
	if st.size == 0 {
		return nil
	}
	if err := s.open(st); err != nil {
		return fmt.Errorf("log %s: %w", key, err)
	}
	if err := st.f.Sync(); err != nil {
		return fmt.Errorf("log %s: %w", key, err)
	}
	return syncDir(filepath.Dir(st.path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// Remove deletes every log of a build, all attempts. Followers of its
// streams return ErrRemoved. Remove is meant for builds that ended: a write
// racing with it may fail with ErrRemoved, create the stream anew (and
// then meet a gap), or be lost with the rest.
func (s *Store) Remove(build string) error {
	if err := validID("build", build); err != nil {
		return err
	}
	return s.removeDir(s.buildDir(build), func(k Key) bool { return k.Build == build })
}

// RemoveAttempt deletes the logs of one attempt of a build, as Remove does
// a build's; the build's folder goes with its last attempt. The build's
// other attempts are untouched, a running one among them.
func (s *Store) RemoveAttempt(build string, attempt int) error {
	if err := (Key{Build: build, Attempt: attempt, Stream: Stdout}).Validate(); err != nil {
		return err
	}
	match := func(k Key) bool { return k.Build == build && k.Attempt == attempt }
	if err := s.removeDir(s.attemptDir(build, attempt), match); err != nil {
		return err
	}
	// Only an empty folder goes: a write to another attempt keeps it
	// (open makes it again if it went just before).
	err := os.Remove(s.buildDir(build))
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("log store: %w", err)
	}
	return nil
}

// removeDir takes dir (a build's or an attempt's) out of the store and
// deletes it; the streams match says are in it are dropped.
func (s *Store) removeDir(dir string, match func(Key) bool) error {
	trash := filepath.Join(s.root, "trash")
	if err := os.MkdirAll(trash, 0o700); err != nil {
		return fmt.Errorf("log store: %w", err)
	}
	tmp, err := os.MkdirTemp(trash, "rm-")
	if err != nil {
		return fmt.Errorf("log store: %w", err)
	}
	s.mu.Lock()
	for key, st := range s.streams {
		if match(key) {
			s.drop(st)
		}
	}
	// Renaming is quick and atomic: the logs vanish at once, and a write
	// after this creates fresh files.
	err = os.Rename(dir, filepath.Join(tmp, "b"))
	s.mu.Unlock()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		os.Remove(tmp)
		return fmt.Errorf("log store: %w", err)
	}
	// The logs are gone from the store now; what is left is trash. A
	// writer that raced the rename may still add a file to it while it is
	// deleted, so try again, and leave any rest to the next Open, which
	// empties the trash.
	for try := 0; try < 3; try++ {
		if os.RemoveAll(tmp) == nil {
			break
		}
	}
	return nil
}

// Builds returns the builds that have logs in the store, in order.
func (s *Store) Builds() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "builds"))
	if err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && validID("build", e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// drop takes an entry out of the map and wakes its followers. Called with
// s.mu held.
func (s *Store) drop(st *stream) {
	if !st.gone {
		delete(s.streams, st.key)
		st.gone = true
	}
	if st.refs == 0 {
		s.closeFile(st)
	}
	st.state.Lock()
	st.removed = true
	if st.changed != nil {
		close(st.changed)
		st.changed = nil
	}
	st.state.Unlock()
}

// Close closes the store's files; followers return ErrClosed, and later
// calls fail with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.done)
	for _, st := range s.streams {
		if !st.gone {
			delete(s.streams, st.key)
			st.gone = true
		}
		if st.refs == 0 {
			s.closeFile(st)
		}
	}
	return nil
}
