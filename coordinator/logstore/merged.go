package logstore

import (
	"bytes"
	"context"
	"errors"
	"io"

	"github.com/monkeyci/monkeyci/logorder"
)

// Source is what FollowMerged reads: a Store, or what stands for one.
type Source interface {
	ReadAt(key Key, offset int64, p []byte) (int, error)
	Follow(ctx context.Context, key Key, from int64, w io.Writer, ended <-chan struct{}) error
}

// Piece is a piece of a job's output merged by its order index: a
// command's start (Start, Text) or bytes of one of its streams.
type Piece struct {
	// Command is the wrapper's index of the command ("0" is the first),
	// "" when none.
	Command string
	Start   bool
	Text    string // the command's line, on Start
	Stream  string // "out" or "err"
	Offset  int64  // of Data in its stream
	Data    []byte // valid during the call only
	// Next is the offset in the order index after this piece's record:
	// where to follow on from.
	Next int64
}

// maxPiece bounds a piece's data; a longer record comes in several pieces.
const maxPiece = 256 << 10

// errEnough stops a Follow once it has copied what was wanted.
var errEnough = errors.New("enough")

// FollowMerged passes the output of key's job (its Stream is ignored) to
// emit in the order its order index says, from offset from in the index,
// like Follow: until ended is closed and all is passed on, or ctx ends. An
// index names bytes that may be stored a moment after it: those are waited
// for (until the build ends). A record that cannot be read is skipped.
func FollowMerged(ctx context.Context, src Source, key Key, from int64, ended <-chan struct{}, emit func(Piece) error) error {
	key.Stream = Order
	w := &mergeWriter{ctx: ctx, src: src, key: key, next: from, ended: ended, emit: emit}
	return src.Follow(ctx, key, from, w, ended)
}

// HasOrder says whether streams (an attempt's, as Sizes lists them) hold
// an order index for job.
func HasOrder(streams []Stream, job string) bool {
	for _, s := range streams {
		if s.Job == job && s.Stream == Order {
			return true
		}
	}
	return false
}

// mergeWriter takes the order index's bytes, a line at a time.
type mergeWriter struct {
	ctx     context.Context
	src     Source
	key     Key
	next    int64 // index offset after the last whole line
	partial []byte
	// skipping: inside a line too long for a record, dropped to its end.
	skipping bool
	ended    <-chan struct{}
	emit     func(Piece) error
	buf      []byte
}

func (w *mergeWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if w.skipping || len(w.partial)+len(p) > logorder.MaxLine {
				// No record is that long: drop the line, to its end.
				w.next += int64(len(w.partial) + len(p))
				w.partial, w.skipping = w.partial[:0], true
				return n, nil
			}
			w.partial = append(w.partial, p...)
			return n, nil
		}
		line := p[:i]
		if len(w.partial) > 0 {
			line = append(w.partial, line...)
		}
		start := w.next
		w.next += int64(len(line)) + 1
		p = p[i+1:]
		w.partial = w.partial[:0]
		if w.skipping {
			w.skipping = false
			continue
		}
		r, err := logorder.Parse(string(line))
		if err != nil {
			continue
		}
		if err := w.record(r, start); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// record emits what r names; start is r's offset in the index.
func (w *mergeWriter) record(r logorder.Record, start int64) error {
	if r.Start {
		return w.emit(Piece{Command: r.Command, Start: true, Text: r.Text, Next: w.next})
	}
	key := w.key
	key.Stream = r.Stream
	for off, end := r.Offset, r.Offset+r.Length; off < end; {
		data, err := w.read(key, off, int(min(end-off, maxPiece)))
		if err != nil || len(data) == 0 {
			return err // the bytes never came: the build ended without them
		}
		next := w.next
		if off+int64(len(data)) < end {
			next = start // not past this record yet: a follower resumes with it
		}
		if err := w.emit(Piece{Command: r.Command, Stream: r.Stream, Offset: off, Data: data, Next: next}); err != nil {
			return err
		}
		off += int64(len(data))
	}
	return nil
}

// read returns n bytes of key at off, waiting for them while they are not
// stored yet; fewer only when the build ended without them.
func (w *mergeWriter) read(key Key, off int64, n int) ([]byte, error) {
	if cap(w.buf) < n {
		w.buf = make([]byte, n)
	}
	b := w.buf[:n]
	got, err := w.src.ReadAt(key, off, b)
	if got == n {
		return b, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	c := &collector{b: b[:got:n]}
	err = w.src.Follow(w.ctx, key, off+int64(got), c, w.ended)
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return c.b, nil
}

// collector fills b up to its capacity, then stops a Follow.
type collector struct{ b []byte }

func (c *collector) Write(p []byte) (int, error) {
	k := copy(c.b[len(c.b):cap(c.b)], p)
	c.b = c.b[:len(c.b)+k]
	if len(c.b) == cap(c.b) {
		return k, errEnough
	}
	return k, nil
}
