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
	"context"
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

	"github.com/monkeyci/monkeyci/logorder"
)

// MaxChunk is the largest chunk Write takes.
const MaxChunk = 1 << 20

// DefaultMaxOpen is how many stream files a Store keeps open at most
// (beyond those in use at the moment).
const DefaultMaxOpen = 256

// maxID bounds the length of a build or job id (file names stay short).
const maxID = 128

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

// Stream names.
const (
	Stdout = "out"
	Stderr = "err"
	// Order is a job's order index of its out and err (package logorder).
	Order = logorder.Stream
)

// Key names one output stream of one attempt of a build.
type Key struct {
	Build   string
	Attempt int
	Job     string // "" is the script container
	Stream  string // "out", "err" or "ord"
}

func (k Key) String() string {
	return fmt.Sprintf("%s#%d/%s/%s", k.Build, k.Attempt, k.Job, k.Stream)
}

// Validate reports whether the key names a stream (ErrInvalid if not).
// Build and job ids are made of letters, digits, '.', '_' and '-', at most
// 128 of them, and are not "." or ".."; the job may be "". The attempt
// counts from 1 and the stream is "out", "err" or "ord".
func (k Key) Validate() error {
	if err := validID("build", k.Build); err != nil {
		return err
	}
	if k.Attempt < 1 {
		return fmt.Errorf("%w: attempt %d", ErrInvalid, k.Attempt)
	}
	if k.Job != "" {
		if err := validID("job", k.Job); err != nil {
			return err
		}
	}
	if k.Stream != Stdout && k.Stream != Stderr && k.Stream != Order {
		return fmt.Errorf("%w: stream %q (want %q, %q or %q)", ErrInvalid, k.Stream, Stdout, Stderr, Order)
	}
	return nil
}

func validID(what, id string) error {
	if id == "" || len(id) > maxID || id == "." || id == ".." {
		return fmt.Errorf("%w: %s id %q", ErrInvalid, what, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %s id %q", ErrInvalid, what, id)
		}
	}
	return nil
}

// fileName is the stream's file in its attempt's directory. Streams have no
// '-', so the first '-' separates the stream from the job.
func (k Key) fileName() string {
	if k.Job == "" {
		return k.Stream + ".log"
	}
	return k.Stream + "-" + k.Job + ".log"
}

// parseFileName is the inverse of fileName; ok is false for other files.
func parseFileName(name string) (job, stream string, ok bool) {
	base, found := strings.CutSuffix(name, ".log")
	if !found {
		return "", "", false
	}
	stream, job, _ = strings.Cut(base, "-")
	k := Key{Build: "b", Attempt: 1, Job: job, Stream: stream}
	if k.Validate() != nil || k.fileName() != name {
		return "", "", false
	}
	return job, stream, true
}

// Stream is a stored stream with its size.
type Stream struct {
	Key
	Size int64
}

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

// stream is the in-memory state of one stream file. An entry lives in
// Store.streams while it is in use (refs > 0) or its file is open.
type stream struct {
	key  Key
	path string

	// Guarded by Store.mu.
	refs int           // operations and followers using the entry
	elem *list.Element // in Store.lru while f is open
	gone bool          // removed from Store.streams (Remove, Close)

	// mu serialises writes and file handling. f is touched by the holder
	// of mu while refs > 0, or under Store.mu when refs == 0.
	mu     sync.Mutex
	f      *os.File // opened for writing, nil when closed
	loaded bool     // size read from the file

	// state guards size, changed and removed, for followers.
	state   sync.Mutex
	size    int64
	changed chan struct{} // closed at the next change; nil if nobody waits
	removed bool
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

// acquire returns the key's entry, pinned until release.
func (s *Store) acquire(key Key) (*stream, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	st := s.streams[key]
	if st == nil {
		st = &stream{key: key, path: filepath.Join(s.attemptDir(key.Build, key.Attempt), key.fileName())}
		s.streams[key] = st
	}
	st.refs++
	if st.elem != nil {
		s.lru.MoveToFront(st.elem)
	}
	return st, nil
}

// release unpins an entry; an idle entry without an open file is dropped,
// and idle open files beyond maxOpen are closed.
func (s *Store) release(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.refs--
	if st.refs > 0 {
		return
	}
	if st.gone && st.f != nil {
		s.closeFile(st)
	}
	if st.elem == nil && !st.gone {
		delete(s.streams, st.key)
		st.gone = true
	}
	s.evict()
}

// evict closes idle files, least recently used first, while more than
// maxOpen are open. Called with s.mu held.
func (s *Store) evict() {
	for e := s.lru.Back(); e != nil && s.lru.Len() > s.maxOpen; {
		st := e.Value.(*stream)
		e = e.Prev()
		if st.refs > 0 {
			continue
		}
		s.closeFile(st)
		if !st.gone {
			delete(s.streams, st.key)
			st.gone = true
		}
	}
}

// closeFile closes an idle entry's file. Called with s.mu held and
// st.refs == 0 (so nobody holds st.mu).
func (s *Store) closeFile(st *stream) {
	if st.f != nil {
		st.f.Close()
		st.f = nil
	}
	if st.elem != nil {
		s.lru.Remove(st.elem)
		st.elem = nil
	}
}

// load reads the stream's size from its file once. Called with st.mu held.
func (st *stream) load() error {
	if st.loaded {
		return nil
	}
	var size int64
	fi, err := os.Stat(st.path)
	switch {
	case err == nil:
		size = fi.Size()
	case errors.Is(err, fs.ErrNotExist):
	default:
		return err
	}
	st.state.Lock()
	st.size = size
	st.state.Unlock()
	st.loaded = true
	return nil
}

// open opens the stream's file for writing. Called with st.mu held.
func (s *Store) open(st *stream) error {
	if st.f != nil {
		return nil
	}
	f, err := os.OpenFile(st.path, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(st.path), 0o700); err == nil {
			f, err = os.OpenFile(st.path, os.O_RDWR|os.O_CREATE, 0o600)
		}
	}
	if err != nil {
		if st.isRemoved() {
			// Remove moved the directory away meanwhile.
			return ErrRemoved
		}
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.gone {
		// Removed meanwhile: the file went with its build (or the store
		// closed). Writing to it would be lost, so refuse.
		f.Close()
		if s.closed {
			return ErrClosed
		}
		return ErrRemoved
	}
	st.f = f
	st.elem = s.lru.PushFront(st)
	s.evict()
	return nil
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

// grow records a new size and wakes the followers.
func (st *stream) grow(size int64) {
	st.state.Lock()
	st.size = size
	if st.changed != nil {
		close(st.changed)
		st.changed = nil
	}
	st.state.Unlock()
}

func (st *stream) isRemoved() bool {
	st.state.Lock()
	defer st.state.Unlock()
	return st.removed
}

// snapshot returns the size and a channel closed at the next change (or
// removal).
func (st *stream) snapshot() (size int64, changed <-chan struct{}, removed bool) {
	st.state.Lock()
	defer st.state.Unlock()
	if st.removed {
		return st.size, nil, true
	}
	if st.changed == nil {
		st.changed = make(chan struct{})
	}
	return st.size, st.changed, false
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

func (st *stream) loadedSize() (int64, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.load(); err != nil {
		return 0, fmt.Errorf("log %s: %w", st.key, err)
	}
	return st.size, nil
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

// followBuf is how much Follow reads at a time.
const followBuf = 256 << 10

// Follow copies the key's stream to w from offset from on, then the bytes
// written after, as they are written (it waits for writes, without
// polling). It returns nil once ended is closed (the build ended, no more
// writes come) and every stored byte has been copied; with ctx's error when
// ctx ends; with ErrRemoved if the build's logs are removed meanwhile, and
// with ErrClosed if the store closes. A nil ended follows until ctx ends.
// w should not block forever: Follow holds no lock while writing to it.
func (s *Store) Follow(ctx context.Context, key Key, from int64, w io.Writer, ended <-chan struct{}) error {
	if from < 0 {
		return fmt.Errorf("%w: negative offset %d", ErrInvalid, from)
	}
	st, err := s.acquire(key)
	if err != nil {
		return err
	}
	defer s.release(st)
	if _, err := st.loadedSize(); err != nil {
		return err
	}
	var (
		f   *os.File
		buf []byte
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Look at ended before the size: if the build had ended by then,
		// the size read after is final.
		isEnded := false
		select {
		case <-ended:
			isEnded = true
		default:
		}
		size, changed, removed := st.snapshot()
		if removed {
			return fmt.Errorf("log %s: %w", key, ErrRemoved)
		}
		if from < size {
			if f == nil {
				if f, err = os.Open(st.path); err != nil {
					if st.isRemoved() {
						err = ErrRemoved
					}
					return fmt.Errorf("log %s: %w", key, err)
				}
				buf = make([]byte, followBuf)
			}
			n, err := f.ReadAt(buf[:min(int64(len(buf)), size-from)], from)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return werr
				}
				from += int64(n)
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("log %s: %w", key, err)
			}
			if n == 0 {
				// The file is shorter than recorded: removed under us.
				return fmt.Errorf("log %s: %w", key, ErrRemoved)
			}
			continue
		}
		if isEnded {
			return nil
		}
		select {
		case <-changed:
		case <-ended:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrClosed
		}
	}
}

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
		if key.Build != build {
			continue
		}
		s.drop(st)
	}
	// Renaming is quick and atomic: the build's logs vanish at once, and
	// a write after this creates fresh files.
	err = os.Rename(s.buildDir(build), filepath.Join(tmp, "b"))
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
