package logarchive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/internal/s3test"
	"github.com/monkeyci/monkeyci/logorder"
)

// eachBackend runs test against a blob store in a folder, one in an S3
// server (versitygw), and a folder whose reader cannot read at offsets
// (what a store of another kind may give).
func eachBackend(t *testing.T, test func(t *testing.T, blobs blob.Store)) {
	t.Run("Dir", func(t *testing.T) { test(t, openDir(t)) })
	t.Run("S3", func(t *testing.T) {
		srv := s3test.Start(t)
		c, err := blob.ParseS3URL(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		c.AccessKey, c.SecretKey = srv.AccessKey, srv.SecretKey
		s, err := blob.OpenS3(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		test(t, s)
	})
	t.Run("Sequential", func(t *testing.T) { test(t, sequential{openDir(t)}) })
}

func openDir(t *testing.T) *blob.Dir {
	t.Helper()
	d, err := blob.OpenDir(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sequential is a store whose blobs read only from their start.
type sequential struct{ blob.Store }

func (s sequential) Get(ctx context.Context, key string) (io.ReadCloser, blob.Info, error) {
	rc, info, err := s.Store.Get(ctx, key)
	if err != nil {
		return nil, info, err
	}
	return struct {
		io.Reader
		io.Closer
	}{rc, rc}, info, nil
}

// failingPut is a store whose puts fail after some bytes, as a crash or a
// lost connection cuts one short.
type failingPut struct{ blob.Store }

var errCut = errors.New("cut short")

func (s failingPut) Put(ctx context.Context, key string, r io.Reader) (blob.Info, error) {
	return s.Store.Put(ctx, key, io.MultiReader(io.LimitReader(r, 100), errReader{errCut}))
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// openDisk opens a log store on disk for the test.
func openDisk(t *testing.T, dir string) *logstore.Store {
	t.Helper()
	s, err := logstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// writeBuild writes an attempt's logs: the script's out and err, a job
// with an order index over its out and err, a long job (several members,
// written in chunks of odd sizes), and a stream of one byte.
func writeBuild(t *testing.T, s interface {
	Write(logstore.Key, int64, []byte) (int64, error)
}, build string, attempt int) {
	t.Helper()
	put := func(job, stream string, data []byte) {
		key := logstore.Key{Build: build, Attempt: attempt, Job: job, Stream: stream}
		for off := 0; off < len(data); {
			n := min(len(data)-off, 1+off%77777)
			if _, err := s.Write(key, int64(off), data[off:off+n]); err != nil {
				t.Fatal(err)
			}
			off += n
		}
	}
	put("", logstore.Stdout, []byte("checking out\n\x1b[32mok\x1b[0m\n"))
	put("", logstore.Stderr, []byte("a warning\n"))
	var out, errs, ord []byte
	for i := range 40 {
		ord = logorder.Record{Command: fmt.Sprint(i % 3), Start: true, Text: fmt.Sprint("make step", i)}.Append(ord)
		o := fmt.Appendf(nil, "step %d says hello\n", i)
		ord = logorder.Record{Command: fmt.Sprint(i % 3), Stream: "out", Offset: int64(len(out)), Length: int64(len(o))}.Append(ord)
		out = append(out, o...)
		if i%4 == 0 {
			e := fmt.Appendf(nil, "step %d complains\n", i)
			ord = logorder.Record{Command: fmt.Sprint(i % 3), Stream: "err", Offset: int64(len(errs)), Length: int64(len(e))}.Append(ord)
			errs = append(errs, e...)
		}
	}
	put("test", logorder.Stream, ord)
	put("test", logstore.Stdout, out)
	put("test", logstore.Stderr, errs)
	put("long", logstore.Stdout, longLog(3*chunkSize+12345))
	put("tiny", logstore.Stderr, []byte("!"))
}

// longLog is n bytes of lines of words, some random.
func longLog(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d: %x compiling package %d\n", i, rng.Uint32(), rng.IntN(100))
	}
	return b.Bytes()[:n]
}

// reader is how the coordinator and the dashboard read logs.
type reader interface {
	Size(logstore.Key) (int64, error)
	Sizes(build string, attempt int) ([]logstore.Stream, error)
	ReadAt(key logstore.Key, offset int64, p []byte) (int, error)
	Follow(ctx context.Context, key logstore.Key, from int64, w io.Writer, ended <-chan struct{}) error
}

var closed = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// readAll reads an attempt's logs in every way there is, into one text:
// the streams and sizes, each stream whole and in pieces at offsets that
// cross members, followed from offsets, and each job merged by its index.
func readAll(t *testing.T, r reader, build string, attempt int) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	streams, err := r.Sizes(build, attempt)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range streams {
		size, err := r.Size(st.Key)
		fmt.Fprintf(&b, "%s: %d bytes, Size %d %v\n", st.Key, st.Size, size, err)
		whole := make([]byte, st.Size+10)
		n, err := r.ReadAt(st.Key, 0, whole)
		fmt.Fprintf(&b, "  whole: %d %v %q\n", n, err, whole[:n])
		for _, off := range []int64{1, chunkSize - 3, chunkSize, 2*chunkSize + 1, st.Size - 1, st.Size, st.Size + 5} {
			p := make([]byte, 7)
			n, err := r.ReadAt(st.Key, off, p)
			fmt.Fprintf(&b, "  at %d: %d %v %q\n", off, n, err, p[:n])
		}
		for _, from := range []int64{0, chunkSize + 1, st.Size} {
			var out bytes.Buffer
			err := r.Follow(ctx, st.Key, from, &out, closed)
			fmt.Fprintf(&b, "  from %d: %v %q\n", from, err, out.Bytes())
		}
		if st.Stream == logstore.Order {
			err := logstore.FollowMerged(ctx, r, st.Key, 0, closed, func(p logstore.Piece) error {
				fmt.Fprintf(&b, "  merged: %+v %q\n", p, p.Data)
				return nil
			})
			fmt.Fprintf(&b, "  merged: %v\n", err)
		}
	}
	missing := logstore.Key{Build: build, Attempt: attempt, Job: "none", Stream: logstore.Stdout}
	size, err := r.Size(missing)
	n, rerr := r.ReadAt(missing, 0, make([]byte, 4))
	fmt.Fprintf(&b, "a stream never written: %d %v, %d %v\n", size, err, n, rerr)
	return b.String()
}
