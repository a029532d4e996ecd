package logarchive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/monkeyci/monkeyci/coordinator/logstore"
)

// errPutEnded stops an archive's writer once its put has returned.
var errPutEnded = errors.New("the put ended")

// Archive moves the logs of a build's attempt that has ended from disk to
// the blob store: one blob (Key), put whole, read back and checked, and
// only then are the files removed. Readers find the logs throughout: on
// disk until the blob is checked, in the blob after. From the call on,
// Write takes nothing more for the attempt.
//
// Archive may be cut short anywhere (an error, a crash): called again, as
// after a restart, it finishes the move; a blob already put is checked,
// not put again. An attempt with nothing on disk is left as it is. Call it
// only once the attempt has ended: what is on disk is taken as whole.
func (s *Store) Archive(ctx context.Context, build string, attempt int) error {
	if err := (logstore.Key{Build: build, Attempt: attempt, Stream: logstore.Stdout}).Validate(); err != nil {
		return err
	}
	l := s.lock(build, attempt)
	l.Lock() // once writes in flight are stored
	s.seal(build, attempt)
	l.Unlock()
	streams, err := s.disk.Sizes(build, attempt)
	if err != nil || len(streams) == 0 {
		return err
	}
	key := Key(build, attempt)
	x, err := s.fetchIndex(ctx, key)
	if err != nil && !errors.Is(err, errCorrupt) {
		return err
	}
	switch {
	case covers(x, streams):
		// Put before a crash: checked again below.
	case x != nil && !x.within(streams):
		// Only a write after the move could make this: keep both.
		return fmt.Errorf("archiving logs: %s holds more than the disk, and the disk more than it: both left as they are", key)
	default:
		if x, err = s.put(ctx, key, s.sources(streams)); err != nil {
			return err
		}
	}
	if err := s.verify(ctx, build, attempt, x); err != nil {
		return err
	}
	if s.beforeRemove != nil {
		if err := s.beforeRemove(); err != nil {
			return err
		}
	}
	l.Lock()
	defer l.Unlock()
	s.mu.Lock()
	s.gen++
	s.indexes.put(attemptKey{build, attempt}, x)
	s.mu.Unlock()
	return s.disk.RemoveAttempt(build, attempt)
}

func (s *Store) seal(build string, attempt int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := attemptKey{build, attempt}
	if s.sealed[k] {
		return
	}
	s.sealed[k] = true
	s.sealOrder = append(s.sealOrder, k)
	if len(s.sealOrder) > maxSealed {
		delete(s.sealed, s.sealOrder[0])
		s.sealOrder = s.sealOrder[1:]
	}
}

func (s *Store) isSealed(build string, attempt int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sealed[attemptKey{build, attempt}]
}

// covers says whether an archive (nil: none) holds every stream on disk,
// as long at least.
func covers(x *index, streams []logstore.Stream) bool {
	if x == nil {
		return false
	}
	for _, st := range streams {
		if a := x.find(st.Key); a == nil || a.Size < st.Size {
			return false
		}
	}
	return true
}

// within says whether the streams on disk hold every stream of the
// archive, as long at least.
func (x *index) within(streams []logstore.Stream) bool {
	for _, a := range x.Streams {
		i := slices.IndexFunc(streams, func(st logstore.Stream) bool { return st.Job == a.Job && st.Stream == a.Stream })
		if i < 0 || streams[i].Size < a.Size {
			return false
		}
	}
	return true
}

// sources are the streams on disk, to archive.
func (s *Store) sources(streams []logstore.Stream) []source {
	out := make([]source, len(streams))
	for i, st := range streams {
		out[i] = source{key: st.Key, size: st.Size, open: func() (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(liveReader{s.disk, st.Key}, 0, st.Size)), nil
		}}
	}
	return out
}

// put writes the archive of sources under key and returns its index.
func (s *Store) put(ctx context.Context, key string, sources []source) (*index, error) {
	pr, pw := io.Pipe()
	type written struct {
		x   *index
		sum string
		err error
	}
	done := make(chan written, 1)
	go func() {
		x, sum, err := writeArchive(pw, sources)
		pw.CloseWithError(err) // nil: the end
		done <- written{x, sum, err}
	}()
	info, err := s.blobs.Put(ctx, key, pr)
	pr.CloseWithError(errPutEnded) // a writer left waiting stops
	w := <-done
	switch {
	case w.err != nil && !errors.Is(w.err, errPutEnded): // reading the disk
		return nil, w.err
	case err != nil:
		return nil, fmt.Errorf("archiving logs: %w", err)
	case w.err != nil:
		return nil, w.err
	case info.Size != w.x.Size || info.SHA256 != w.sum:
		return nil, fmt.Errorf("archiving logs: %s stored %d bytes with sha256 %s, %d with %s were sent", key, info.Size, info.SHA256, w.x.Size, w.sum)
	}
	return w.x, nil
}

// verify reads an attempt's archive back from the blob store: it must be
// the one written (x), every stream whole, with the digest its index says.
func (s *Store) verify(ctx context.Context, build string, attempt int, x *index) error {
	key := Key(build, attempt)
	got, err := s.fetchIndex(ctx, key)
	if err != nil {
		return err
	}
	if got == nil || !sameIndex(got, x) {
		return fmt.Errorf("archiving logs: %s does not read back as written", key)
	}
	for _, st := range x.Streams {
		k := logstore.Key{Build: build, Attempt: attempt, Job: st.Job, Stream: st.Stream}
		h := sha256.New()
		if err := s.followArchived(ctx, x, k, 0, h); err != nil {
			return err
		}
		if sum := hex.EncodeToString(h.Sum(nil)); sum != st.SHA256 {
			return fmt.Errorf("archiving logs: %s reads back with sha256 %s, want %s", k, sum, st.SHA256)
		}
	}
	return nil
}

func sameIndex(a, b *index) bool {
	return a.Size == b.Size && a.Chunk == b.Chunk && slices.EqualFunc(a.Streams, b.Streams, func(p, q streamIndex) bool {
		return p.Job == q.Job && p.Stream == q.Stream && p.Size == q.Size && p.SHA256 == q.SHA256 && slices.Equal(p.At, q.At)
	})
}

// liveReader reads one stream of the live logs as an io.ReaderAt.
type liveReader struct {
	live Live
	key  logstore.Key
}

func (r liveReader) ReadAt(p []byte, off int64) (int, error) { return r.live.ReadAt(r.key, off, p) }
