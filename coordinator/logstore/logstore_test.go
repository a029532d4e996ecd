package logstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/wait"
)

func open(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func key(job, stream string) Key {
	return Key{Build: "b1", Attempt: 1, Job: job, Stream: stream}
}

func content(t testing.TB, s *Store, k Key) string {
	t.Helper()
	r, err := s.Reader(k)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteOffsets(t *testing.T) {
	big := make([]byte, MaxChunk+1)
	tests := []struct {
		name    string
		initial string // stored before, at 0
		offset  int64
		data    []byte
		want    string // stored after
		size    int64  // returned
		err     error
	}{
		{name: "first chunk", offset: 0, data: []byte("hello"), want: "hello", size: 5},
		{name: "append", initial: "hello", offset: 5, data: []byte(" world"), want: "hello world", size: 11},
		{name: "exact resend", initial: "hello world", offset: 5, data: []byte(" world"), want: "hello world", size: 11},
		{name: "resend of the start", initial: "hello world", offset: 0, data: []byte("hel"), want: "hello world", size: 11},
		{name: "overlap", initial: "hello wo", offset: 5, data: []byte(" world!"), want: "hello world!", size: 12},
		{name: "overlap from 0", initial: "hello", offset: 0, data: []byte("hello there"), want: "hello there", size: 11},
		{name: "stored bytes win", initial: "hello", offset: 3, data: []byte("XX!"), want: "hello!", size: 6},
		{name: "gap", initial: "hello", offset: 6, data: []byte("x"), want: "hello", size: 5, err: ErrGap},
		{name: "gap on empty stream", offset: 1, data: []byte("x"), want: "", size: 0, err: ErrGap},
		{name: "too large", initial: "hello", offset: 5, data: big, want: "hello", err: ErrTooLarge},
		{name: "largest chunk", offset: 0, data: big[:MaxChunk], want: string(big[:MaxChunk]), size: MaxChunk},
		{name: "empty chunk at end", initial: "hello", offset: 5, data: nil, want: "hello", size: 5},
		{name: "empty chunk inside", initial: "hello", offset: 2, data: []byte{}, want: "hello", size: 5},
		{name: "empty chunk past end", initial: "hello", offset: 9, data: nil, want: "hello", size: 5, err: ErrGap},
		{name: "empty chunk on empty stream", offset: 0, data: nil, want: "", size: 0},
		{name: "negative offset", initial: "hello", offset: -1, data: []byte("x"), want: "hello", err: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			k := key("test", Stdout)
			if tt.initial != "" {
				if n, err := s.Write(k, 0, []byte(tt.initial)); err != nil || n != int64(len(tt.initial)) {
					t.Fatalf("initial write: %d, %v", n, err)
				}
			}
			size, err := s.Write(k, tt.offset, tt.data)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if tt.err == nil || errors.Is(tt.err, ErrGap) {
				if size != tt.size {
					t.Errorf("size = %d, want %d", size, tt.size)
				}
			}
			if got := content(t, s, k); got != tt.want {
				t.Errorf("stored %q, want %q", trunc(got), trunc(tt.want))
			}
			if got, err := s.Size(k); err != nil || got != int64(len(tt.want)) {
				t.Errorf("Size = %d, %v; want %d", got, err, len(tt.want))
			}
			// What is on disk is what the store reports.
			fi, err := os.Stat(filepath.Join(s.Root(), "builds", "b1", "1", "out-test.log"))
			switch {
			case err == nil:
				if fi.Size() != int64(len(tt.want)) {
					t.Errorf("file size %d, want %d", fi.Size(), len(tt.want))
				}
			case !os.IsNotExist(err) || tt.want != "":
				t.Errorf("stat: %v", err)
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func TestKeys(t *testing.T) {
	s := open(t)
	long := strings.Repeat("a", 129)
	bad := []Key{
		{Build: "", Attempt: 1, Stream: Stdout},
		{Build: ".", Attempt: 1, Stream: Stdout},
		{Build: "..", Attempt: 1, Stream: Stdout},
		{Build: "../x", Attempt: 1, Stream: Stdout},
		{Build: "a/b", Attempt: 1, Stream: Stdout},
		{Build: `a\b`, Attempt: 1, Stream: Stdout},
		{Build: "/abs", Attempt: 1, Stream: Stdout},
		{Build: "a b", Attempt: 1, Stream: Stdout},
		{Build: "a\x00", Attempt: 1, Stream: Stdout},
		{Build: "é", Attempt: 1, Stream: Stdout},
		{Build: long, Attempt: 1, Stream: Stdout},
		{Build: "b", Attempt: 0, Stream: Stdout},
		{Build: "b", Attempt: -1, Stream: Stdout},
		{Build: "b", Attempt: 1, Job: "..", Stream: Stdout},
		{Build: "b", Attempt: 1, Job: "../../etc", Stream: Stdout},
		{Build: "b", Attempt: 1, Job: "a/b", Stream: Stdout},
		{Build: "b", Attempt: 1, Job: long, Stream: Stdout},
		{Build: "b", Attempt: 1, Stream: ""},
		{Build: "b", Attempt: 1, Stream: "in"},
		{Build: "b", Attempt: 1, Stream: "out/../x"},
	}
	for _, k := range bad {
		if _, err := s.Write(k, 0, []byte("x")); !errors.Is(err, ErrInvalid) {
			t.Errorf("Write(%+v) = %v, want ErrInvalid", k, err)
		}
		if _, err := s.Size(k); !errors.Is(err, ErrInvalid) {
			t.Errorf("Size(%+v) = %v, want ErrInvalid", k, err)
		}
		if err := s.Follow(context.Background(), k, 0, io.Discard, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("Follow(%+v) = %v, want ErrInvalid", k, err)
		}
	}
	for _, b := range []string{"", ".", "..", "a/b", "../x"} {
		if err := s.Remove(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("Remove(%q) = %v, want ErrInvalid", b, err)
		}
		if _, err := s.Sizes(b, 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("Sizes(%q) = %v, want ErrInvalid", b, err)
		}
	}
	// Nothing was created by the refused calls.
	entries, err := os.ReadDir(filepath.Join(s.Root(), "builds"))
	if err != nil || len(entries) != 0 {
		t.Errorf("builds dir: %v, %v", entries, err)
	}
	good := []Key{
		{Build: "b-1.x_y", Attempt: 1, Stream: Stdout},
		{Build: "b", Attempt: 12, Job: "a.b-c_d", Stream: Stderr},
		{Build: "b", Attempt: 1, Job: "out-x.log", Stream: Stdout},
		{Build: "...", Attempt: 1, Job: ".x", Stream: Stdout},
		{Build: strings.Repeat("a", 128), Attempt: 1, Job: strings.Repeat("j", 128), Stream: Stderr},
	}
	for _, k := range good {
		if _, err := s.Write(k, 0, []byte("x")); err != nil {
			t.Errorf("Write(%+v): %v", k, err)
		}
	}
}

func TestStreamsAreSeparate(t *testing.T) {
	s := open(t)
	keys := []Key{key("", Stdout), key("", Stderr), key("a", Stdout), key("a", Stderr), key("a-b", Stdout),
		{Build: "b1", Attempt: 2, Stream: Stdout}, {Build: "b2", Attempt: 1, Stream: Stdout}}
	for i, k := range keys {
		if _, err := s.Write(k, 0, []byte(fmt.Sprint(i, k))); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range keys {
		if got, want := content(t, s, k), fmt.Sprint(i, k); got != want {
			t.Errorf("%v: %q, want %q", k, got, want)
		}
	}
	got, err := s.Sizes("b1", 1)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range got {
		names = append(names, fmt.Sprintf("%s/%s=%d", st.Job, st.Stream, st.Size))
	}
	var wantNames []string
	for i, k := range keys[:5] {
		wantNames = append(wantNames, fmt.Sprintf("%s/%s=%d", k.Job, k.Stream, len(fmt.Sprint(i, k))))
	}
	// Sorted by job then stream.
	wantNames[0], wantNames[1] = wantNames[1], wantNames[0]
	wantNames[2], wantNames[3] = wantNames[3], wantNames[2]
	if fmt.Sprint(names) != fmt.Sprint(wantNames) {
		t.Errorf("Sizes = %v, want %v", names, wantNames)
	}
	if got, err := s.Sizes("nobuild", 1); err != nil || len(got) != 0 {
		t.Errorf("Sizes of unknown build = %v, %v", got, err)
	}
	if got, err := s.Attempts("b1"); err != nil || fmt.Sprint(got) != "[1 2]" {
		t.Errorf("Attempts = %v, %v", got, err)
	}
}

func TestReadAt(t *testing.T) {
	s := open(t)
	k := key("", Stdout)
	p := make([]byte, 4)
	if n, err := s.ReadAt(k, 0, p); n != 0 || err != io.EOF {
		t.Errorf("ReadAt of empty stream = %d, %v", n, err)
	}
	s.Write(k, 0, []byte("0123456789"))
	if n, err := s.ReadAt(k, 2, p); n != 4 || err != nil || string(p) != "2345" {
		t.Errorf("ReadAt = %d, %v, %q", n, err, p)
	}
	if n, err := s.ReadAt(k, 8, p); n != 2 || err != io.EOF || string(p[:n]) != "89" {
		t.Errorf("ReadAt at the end = %d, %v, %q", n, err, p[:n])
	}
	if n, err := s.ReadAt(k, 10, p); n != 0 || err != io.EOF {
		t.Errorf("ReadAt past the end = %d, %v", n, err)
	}
	r, err := s.Reader(k)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s.Write(k, 10, []byte("later"))
	if b, _ := io.ReadAll(r); string(b) != "0123456789" {
		t.Errorf("Reader read %q; it should see the stream as it was", b)
	}
}

// TestResendsAndGaps plays an agent that cuts its output into random
// chunks, resends from older offsets and sometimes skips ahead: the stored
// stream must be exactly what it produced.
func TestResendsAndGaps(t *testing.T) {
	s := open(t)
	k := key("j", Stdout)
	rng := rand.New(rand.NewPCG(1, 2))
	src := make([]byte, 4<<20)
	for i := range src {
		src[i] = byte(rng.IntN(256))
	}
	var acked int64
	for acked < int64(len(src)) {
		off := acked
		switch rng.IntN(5) {
		case 0: // resend from before the ack
			off = max(0, acked-rng.Int64N(100<<10))
		case 1: // a gap
			off = acked + 1 + rng.Int64N(1000)
		}
		end := min(int64(len(src)), off+rng.Int64N(200<<10))
		if off > end {
			off = end
		}
		size, err := s.Write(k, off, src[off:end])
		switch {
		case off > acked:
			if !errors.Is(err, ErrGap) || size != acked {
				t.Fatalf("gap write at %d (acked %d) = %d, %v", off, acked, size, err)
			}
		case err != nil:
			t.Fatal(err)
		default:
			if want := max(acked, end); size != want {
				t.Fatalf("write %d..%d (acked %d) = %d, want %d", off, end, acked, size, want)
			}
			acked = size
		}
	}
	if got := content(t, s, k); got != string(src) {
		t.Fatal("stored stream differs from what was sent")
	}
}

// TestConcurrent writes many streams at once, some by several writers each
// (racing resends of the same bytes), with few open files allowed.
func TestConcurrent(t *testing.T) {
	s := open(t)
	s.SetMaxOpen(4)
	const (
		streams = 24
		writers = 3 // per stream
		size    = 300 << 10
	)
	srcs := make([][]byte, streams)
	for i := range srcs {
		srcs[i] = bytes.Repeat([]byte(fmt.Sprintf("stream %d line\n", i)), size/16)
	}
	keyOf := func(i int) Key {
		return Key{Build: fmt.Sprintf("b%d", i%4), Attempt: 1 + i%2, Job: fmt.Sprintf("j%d", i), Stream: []string{Stdout, Stderr}[i%2]}
	}
	var wg sync.WaitGroup
	errc := make(chan error, streams*writers)
	for i := range streams {
		for w := range writers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(i), uint64(w)))
				k, src := keyOf(i), srcs[i]
				var acked int64
				for acked < int64(len(src)) {
					off := max(0, acked-rng.Int64N(1000))
					end := min(int64(len(src)), off+1+rng.Int64N(8<<10))
					n, err := s.Write(k, off, src[off:end])
					if err != nil {
						errc <- err
						return
					}
					if n < end {
						errc <- fmt.Errorf("%v: wrote to %d, size %d", k, end, n)
						return
					}
					acked = n
					if rng.IntN(50) == 0 {
						// Readers meanwhile.
						if _, err := s.Size(k); err != nil {
							errc <- err
							return
						}
						if _, err := s.Sizes(k.Build, k.Attempt); err != nil {
							errc <- err
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	for i := range streams {
		if got := content(t, s, keyOf(i)); got != string(srcs[i]) {
			t.Errorf("%v: stored %d bytes, differing from the %d sent", keyOf(i), len(got), len(srcs[i]))
		}
	}
	s.mu.Lock()
	open, entries := s.lru.Len(), len(s.streams)
	s.mu.Unlock()
	if open > 4 || entries > 4 {
		t.Errorf("%d open files, %d entries after the writes; want at most 4", open, entries)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.For(t, what, cond)
}

func TestFollow(t *testing.T) {
	s := open(t)
	k := key("", Stdout)
	s.Write(k, 0, []byte("before "))
	var out syncbuf.Buffer
	ended := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- s.Follow(context.Background(), k, 0, &out, ended) }()
	waitFor(t, "bytes stored before", func() bool { return out.String() == "before " })

	// Bytes written after Follow started arrive while the build runs.
	s.Write(k, 7, []byte("during"))
	waitFor(t, "bytes written after the start", func() bool { return out.String() == "before during" })
	s.Write(k, 7, []byte("during, resent"))
	waitFor(t, "the overlap", func() bool { return out.String() == "before during, resent" })
	select {
	case err := <-errc:
		t.Fatalf("Follow returned before the build ended: %v", err)
	default:
	}

	// The last bytes, written right before the end, are all delivered.
	s.Write(k, 21, []byte(" end"))
	close(ended)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after the build ended")
	}
	if got := out.String(); got != "before during, resent end" {
		t.Errorf("followed %q", got)
	}

	// Following an ended build from an offset copies the rest and returns.
	var rest bytes.Buffer
	if err := s.Follow(context.Background(), k, 7, &rest, ended); err != nil || rest.String() != "during, resent end" {
		t.Errorf("Follow from 7 = %q, %v", rest.String(), err)
	}
	// From past the end: nothing, at once.
	rest.Reset()
	if err := s.Follow(context.Background(), k, 100, &rest, ended); err != nil || rest.Len() != 0 {
		t.Errorf("Follow from past the end = %q, %v", rest.String(), err)
	}
}

func TestFollowBeforeFirstWrite(t *testing.T) {
	s := open(t)
	k := key("job", Stderr)
	var out syncbuf.Buffer
	ended := make(chan struct{})
	errc := make(chan error, 1)
	go func() { errc <- s.Follow(context.Background(), k, 0, &out, ended) }()
	time.Sleep(10 * time.Millisecond)
	big := bytes.Repeat([]byte("0123456789abcdef"), 100<<10) // bigger than a read
	for off := 0; off < len(big); off += 64 << 10 {
		if _, err := s.Write(k, int64(off), big[off:min(len(big), off+64<<10)]); err != nil {
			t.Fatal(err)
		}
	}
	close(ended)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if out.String() != string(big) {
		t.Errorf("followed %d bytes, want %d", len(out.String()), len(big))
	}
}

func TestFollowEnds(t *testing.T) {
	s := open(t)
	k := key("", Stdout)
	s.Write(k, 0, []byte("x"))

	// Each case waits for Follow to copy the stored "x": it has then taken
	// the stream, and waits for more. (Removed before that, the stream
	// would be a fresh empty one, followed forever.)

	// ctx ends.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	w, copied := firstWrite()
	go func() { errc <- s.Follow(ctx, k, 0, w, nil) }()
	<-copied
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("Follow after cancel = %v", err)
	}

	// The build is removed.
	w, copied = firstWrite()
	go func() { errc <- s.Follow(context.Background(), k, 0, w, nil) }()
	<-copied
	if err := s.Remove("b1"); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrRemoved) {
		t.Errorf("Follow after Remove = %v", err)
	}

	// The writer fails.
	s.Write(k, 0, []byte("x"))
	werr := errors.New("client gone")
	if err := s.Follow(context.Background(), k, 0, failWriter{werr}, nil); !errors.Is(err, werr) {
		t.Errorf("Follow with a failing writer = %v", err)
	}

	// The store closes.
	w, copied = firstWrite()
	go func() { errc <- s.Follow(context.Background(), k, 0, w, nil) }()
	<-copied
	s.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("Follow after Close = %v", err)
	}
	if _, err := s.Write(k, 1, []byte("y")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v", err)
	}
}

// firstWrite returns a writer that discards what it gets, and a channel it
// closes at its first write.
func firstWrite() (io.Writer, <-chan struct{}) {
	w := &signalWriter{written: make(chan struct{})}
	return w, w.written
}

type signalWriter struct {
	once    sync.Once
	written chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.written) })
	return len(p), nil
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

func TestRestart(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	s.Write(key("", Stdout), 0, []byte("script out"))
	s.Write(key("a", Stderr), 0, []byte("job a err"))
	s.Write(Key{Build: "b1", Attempt: 2, Stream: Stdout}, 0, []byte("attempt 2"))
	// No Close: a crash leaves the files as they are.

	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.Sizes("b1", 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []Stream{{Key: key("", Stdout), Size: 10}, {Key: key("a", Stderr), Size: 9}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Sizes after restart = %v, want %v", got, want)
	}
	if n, err := s2.Size(key("a", Stderr)); n != 9 || err != nil {
		t.Errorf("Size after restart = %d, %v", n, err)
	}
	// The agent resends from its last ack (older than what is stored).
	if n, err := s2.Write(key("", Stdout), 7, []byte("out, more")); n != 16 || err != nil {
		t.Errorf("resend after restart = %d, %v", n, err)
	}
	if _, err := s2.Write(key("", Stdout), 17, []byte("x")); !errors.Is(err, ErrGap) {
		t.Errorf("gap after restart = %v", err)
	}
	if got := content(t, s2, key("", Stdout)); got != "script out, more" {
		t.Errorf("stored %q", got)
	}
	s.Close()

	// A torn write (a crash in the middle) leaves a shorter file: the size
	// is what is on disk, and the resend fills it.
	path := filepath.Join(root, "builds", "b1", "1", "err-a.log")
	if err := os.Truncate(path, 4); err != nil {
		t.Fatal(err)
	}
	s3, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	if n, err := s3.Size(key("a", Stderr)); n != 4 || err != nil {
		t.Errorf("Size after a torn write = %d, %v", n, err)
	}
	if n, err := s3.Write(key("a", Stderr), 0, []byte("job a err, again")); n != 16 || err != nil {
		t.Errorf("resend = %d, %v", n, err)
	}
	if got := content(t, s3, key("a", Stderr)); got != "job a err, again" {
		t.Errorf("stored %q", got)
	}
}

func TestRemove(t *testing.T) {
	s := open(t)
	s.Write(key("", Stdout), 0, []byte("one"))
	s.Write(Key{Build: "b1", Attempt: 2, Job: "x", Stream: Stderr}, 0, []byte("two"))
	s.Write(Key{Build: "b2", Attempt: 1, Stream: Stdout}, 0, []byte("other"))
	if err := s.Remove("b1"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Size(key("", Stdout)); n != 0 || err != nil {
		t.Errorf("Size after Remove = %d, %v", n, err)
	}
	if got, _ := s.Attempts("b1"); len(got) != 0 {
		t.Errorf("attempts after Remove: %v", got)
	}
	if got := content(t, s, Key{Build: "b2", Attempt: 1, Stream: Stdout}); got != "other" {
		t.Errorf("other build: %q", got)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "builds", "b1")); !os.IsNotExist(err) {
		t.Errorf("build dir after Remove: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.Root(), "trash")); len(entries) != 0 {
		t.Errorf("trash left: %v", entries)
	}
	// Removing again, or an unknown build, is fine; the stream starts anew.
	if err := s.Remove("b1"); err != nil {
		t.Error(err)
	}
	if n, err := s.Write(key("", Stdout), 0, []byte("new")); n != 3 || err != nil {
		t.Errorf("Write after Remove = %d, %v", n, err)
	}
}

func TestSync(t *testing.T) {
	s := open(t)
	k := key("", Stdout)
	if err := s.Sync(k); err != nil {
		t.Errorf("Sync of an empty stream: %v", err)
	}
	s.Write(k, 0, []byte("x"))
	s.SetMaxOpen(1)
	s.Write(key("other", Stdout), 0, []byte("y")) // closes k's file
	if err := s.Sync(k); err != nil {
		t.Error(err)
	}
}

// source yields a deterministic, non-repeating-looking stream of 64 KiB
// chunks.
type source struct {
	pool []byte
	rng  *rand.Rand
}

func newSource() *source {
	rng := rand.New(rand.NewPCG(3, 4))
	pool := make([]byte, 4<<20)
	for i := range pool {
		pool[i] = byte(rng.Uint32())
	}
	return &source{pool: pool, rng: rng}
}

func (s *source) chunk(n int) []byte {
	off := s.rng.IntN(len(s.pool) - n)
	return s.pool[off : off+n]
}

const chunkSize = 64 << 10

// TestLargeStreamSHA256 writes 256 MB (32 MB with -short) in 64 KiB chunks
// and checks the file's SHA-256 is that of what was sent.
func TestLargeStreamSHA256(t *testing.T) {
	total := 256 << 20
	if testing.Short() {
		total = 32 << 20
	}
	s := open(t)
	k := key("big", Stdout)
	src := newSource()
	sent := sha256.New()
	start := time.Now()
	var off int64
	for off < int64(total) {
		c := src.chunk(chunkSize)
		sent.Write(c)
		n, err := s.Write(k, off, c)
		if err != nil {
			t.Fatal(err)
		}
		off = n
	}
	elapsed := time.Since(start)
	t.Logf("%d MB in %v: %.0f MB/s", total>>20, elapsed, float64(total)/1e6/elapsed.Seconds())

	f, err := os.Open(filepath.Join(s.Root(), "builds", "b1", "1", "out-big.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stored := sha256.New()
	if _, err := io.Copy(stored, f); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprintf("%x", stored.Sum(nil)), fmt.Sprintf("%x", sent.Sum(nil)); got != want {
		t.Errorf("sha256 of the stored file %s, of what was sent %s", got, want)
	}
}

// BenchmarkWrite256MB writes 256 MB into one stream in 64 KiB chunks, per
// iteration; MB/s is the sustained rate into the store (into the page
// cache: Write does not fsync).
func BenchmarkWrite256MB(b *testing.B) { benchWrite(b, false) }

// BenchmarkWrite256MBSynced is BenchmarkWrite256MB with a Sync at the end
// of each stream: the rate to stable storage.
func BenchmarkWrite256MBSynced(b *testing.B) { benchWrite(b, true) }

func benchWrite(b *testing.B, sync bool) {
	const total = 256 << 20
	s := open(b)
	src := newSource()
	chunks := make([][]byte, 64)
	for i := range chunks {
		chunks[i] = src.chunk(chunkSize)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := Key{Build: fmt.Sprintf("bench%d", i), Attempt: 1, Stream: Stdout}
		var off int64
		for j := 0; off < total; j++ {
			n, err := s.Write(k, off, chunks[j%len(chunks)])
			if err != nil {
				b.Fatal(err)
			}
			off = n
		}
		if sync {
			if err := s.Sync(k); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := s.Remove(k.Build); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkWriteParallel writes 64 KiB chunks to many streams at once.
func BenchmarkWriteParallel(b *testing.B) {
	s := open(b)
	chunk := newSource().chunk(chunkSize)
	b.SetBytes(chunkSize)
	var mu sync.Mutex
	next := 0
	b.RunParallel(func(pb *testing.PB) {
		mu.Lock()
		next++
		k := Key{Build: fmt.Sprintf("par%d", next), Attempt: 1, Stream: Stdout}
		mu.Unlock()
		var off int64
		for pb.Next() {
			n, err := s.Write(k, off, chunk)
			if err != nil {
				b.Error(err)
				return
			}
			off = n
		}
	})
}

// TestRemoveWhileInUse removes a build while its streams are written and
// followed: no deadlock, no panic, and only the documented errors.
func TestRemoveWhileInUse(t *testing.T) {
	s := open(t)
	s.SetMaxOpen(2)
	chunk := bytes.Repeat([]byte("x"), 4<<10)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 6 {
		k := Key{Build: "b1", Attempt: 1, Job: fmt.Sprint("j", i), Stream: Stdout}
		wg.Go(func() {
			var off int64
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := s.Write(k, off, chunk)
				if err != nil && !errors.Is(err, ErrRemoved) && !errors.Is(err, ErrGap) {
					t.Error(err)
					return
				}
				off = n // restarts at 0 after a removal
			}
		})
		wg.Go(func() {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { <-stop; cancel() }()
			for {
				err := s.Follow(ctx, k, 0, io.Discard, nil)
				if ctx.Err() != nil {
					return
				}
				if !errors.Is(err, ErrRemoved) {
					t.Errorf("Follow: %v", err)
					return
				}
			}
		})
	}
	for range 20 {
		time.Sleep(2 * time.Millisecond)
		if err := s.Remove("b1"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}
