package logarchive

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
)

// A follower on disk when the logs move goes on from the archive, and
// gets every byte once.
func TestAFollowerGoesOnFromTheArchive(t *testing.T) {
	eachBackend(t, func(t *testing.T, blobs blob.Store) {
		ctx := context.Background()
		s := New(openDisk(t, t.TempDir()), blobs)
		key := logstore.Key{Build: "b1", Attempt: 1, Job: "long", Stream: logstore.Stdout}
		want := longLog(3*followBuf + 99)
		if _, err := s.Write(key, 0, want); err != nil {
			t.Fatal(err)
		}
		// The follower holds its first piece until the logs have moved.
		w := &heldWriter{first: make(chan struct{}), release: make(chan struct{})}
		followed := make(chan error, 1)
		ended := make(chan struct{}) // the build has not ended, for the follower
		go func() { followed <- s.Follow(ctx, key, 0, w, ended) }()
		<-w.first
		if err := s.Archive(ctx, "b1", 1); err != nil {
			t.Fatal(err)
		}
		close(w.release)
		if err := <-followed; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.buf.Bytes(), want) {
			t.Errorf("followed %d bytes (equal: false), want %d", w.buf.Len(), len(want))
		}
	})
}

type heldWriter struct {
	buf     bytes.Buffer
	once    sync.Once
	first   chan struct{}
	release chan struct{}
}

func (w *heldWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		close(w.first)
		<-w.release
	})
	return w.buf.Write(p)
}

func TestAnArchivedAttemptTakesNoMoreWrites(t *testing.T) {
	s := New(openDisk(t, t.TempDir()), openDir(t))
	key := logstore.Key{Build: "b1", Attempt: 1, Stream: logstore.Stdout}
	if _, err := s.Write(key, 0, []byte("done\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Archive(context.Background(), "b1", 1); err != nil {
		t.Fatal(err)
	}
	for _, k := range []logstore.Key{key, {Build: "b1", Attempt: 1, Job: "late", Stream: logstore.Stdout}} {
		if n, err := s.Write(k, 0, []byte("late")); !errors.Is(err, logstore.ErrRemoved) || n != 0 {
			t.Errorf("a late write to %s: %d, %v", k, n, err)
		}
	}
	// The build's next attempt writes on.
	next := logstore.Key{Build: "b1", Attempt: 2, Stream: logstore.Stdout}
	if n, err := s.Write(next, 0, []byte("again")); n != 5 || err != nil {
		t.Errorf("a write to the next attempt: %d, %v", n, err)
	}
	p := make([]byte, 5)
	if n, err := s.ReadAt(key, 0, p); n != 5 || err != nil || string(p) != "done\n" {
		t.Errorf("the archived stream reads %q, %v", p[:n], err)
	}
}

func TestAPutCutShortLeavesTheDiskAsItWas(t *testing.T) {
	ctx := context.Background()
	disk, blobs := openDisk(t, t.TempDir()), openDir(t)
	s := New(disk, failingPut{blobs})
	writeBuild(t, s, "b1", 1)
	before := readAll(t, s, "b1", 1)
	if err := s.Archive(ctx, "b1", 1); !errors.Is(err, errCut) {
		t.Fatalf("Archive = %v", err)
	}
	if _, err := blobs.Stat(ctx, Key("b1", 1)); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("a put cut short left a blob: %v", err)
	}
	if got := readAll(t, s, "b1", 1); got != before {
		t.Errorf("after a failed move, the logs read otherwise: %s", diff(got, before))
	}
	// The next try moves them.
	if err := New(disk, blobs).Archive(ctx, "b1", 1); err != nil {
		t.Fatal(err)
	}
	if left := onDiskNow(t, disk, "b1"); len(left) != 0 {
		t.Errorf("on disk after the move: %v", left)
	}
	if got := readAll(t, New(disk, blobs), "b1", 1); got != before {
		t.Errorf("after the move, the logs read otherwise: %s", diff(got, before))
	}
}

func TestABrokenArchiveIsAnErrorAndPutAgainFromDisk(t *testing.T) {
	ctx := context.Background()
	disk, blobs := openDisk(t, t.TempDir()), openDir(t)
	key := logstore.Key{Build: "b1", Attempt: 1, Stream: logstore.Stdout}
	if _, err := blobs.Put(ctx, Key("b1", 1), strings.NewReader("not an archive")); err != nil {
		t.Fatal(err)
	}
	if _, err := New(disk, blobs).Size(key); !errors.Is(err, errCorrupt) {
		t.Errorf("Size of a stream in a broken archive: %v", err)
	}
	s := New(disk, blobs)
	if _, err := disk.Write(key, 0, []byte("the real one\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Archive(ctx, "b1", 1); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 13)
	if n, err := New(disk, blobs).ReadAt(key, 0, p); n != 13 || err != nil || string(p) != "the real one\n" {
		t.Errorf("put again: %q, %v", p[:n], err)
	}
}

// An archive that holds what the disk does not is never put over.
func TestAnArchiveAndADiskThatDisagreeAreBothKept(t *testing.T) {
	ctx := context.Background()
	disk, blobs := openDisk(t, t.TempDir()), openDir(t)
	s := New(disk, blobs)
	one := logstore.Key{Build: "b1", Attempt: 1, Job: "one", Stream: logstore.Stdout}
	two := logstore.Key{Build: "b1", Attempt: 1, Job: "two", Stream: logstore.Stdout}
	s.Write(one, 0, []byte("one"))
	if err := s.Archive(ctx, "b1", 1); err != nil {
		t.Fatal(err)
	}
	disk.Write(two, 0, []byte("two")) // behind the store's back
	if err := New(disk, blobs).Archive(ctx, "b1", 1); err == nil {
		t.Error("archived over an archive that held what the disk did not")
	}
	if len(onDiskNow(t, disk, "b1")) == 0 {
		t.Error("the disk's logs went")
	}
	x, err := New(disk, blobs).fetchIndex(ctx, Key("b1", 1))
	if err != nil || x.find(one) == nil || x.find(two) != nil {
		t.Errorf("the archive after: %+v, %v", x, err)
	}
}

// An archive is a gzip file: zcat gives the streams, then the index.
func TestAnArchiveIsAGzipFile(t *testing.T) {
	ctx := context.Background()
	disk, blobs := openDisk(t, t.TempDir()), openDir(t)
	s := New(disk, blobs)
	s.Write(logstore.Key{Build: "b1", Attempt: 1, Stream: logstore.Stdout}, 0, []byte("out\n"))
	s.Write(logstore.Key{Build: "b1", Attempt: 1, Job: "j", Stream: logstore.Stderr}, 0, []byte("err\n"))
	if err := s.Archive(ctx, "b1", 1); err != nil {
		t.Fatal(err)
	}
	rc, _, err := blobs.Get(ctx, Key("b1", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	text, index, _ := strings.Cut(string(all), "{")
	var x struct {
		Streams []struct{ Job, Stream string }
	}
	if text != "out\nerr\n" || json.Unmarshal([]byte("{"+index), &x) != nil || len(x.Streams) != 2 || x.Streams[1].Job != "j" {
		t.Errorf("zcat gives %q", all)
	}
	for _, at := range []int64{0, 1, 1 << 40} {
		if n := int64(len(trailer(at))); n != trailerLen() {
			t.Errorf("the trailer for %d is %d bytes, not %d", at, n, trailerLen())
		}
	}
}

// Readers see the logs whole at every moment of a move.
func TestReadersSeeTheLogsWholeWhileTheyMove(t *testing.T) {
	eachBackend(t, func(t *testing.T, blobs blob.Store) {
		disk := openDisk(t, t.TempDir())
		s := New(disk, blobs)
		writeBuild(t, s, "b1", 1)
		want := wholeLogs(t, s)
		moved := make(chan struct{})
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for after := 0; after < 3; {
					if got := wholeLogs(t, s); got != want {
						t.Errorf("while the logs moved, they read otherwise: %s", diff(got, want))
						return
					}
					select {
					case <-moved:
						after++
					default:
					}
				}
			})
		}
		if err := s.Archive(context.Background(), "b1", 1); err != nil {
			t.Error(err)
		}
		close(moved)
		wg.Wait()
	})
}

// wholeLogs is each stream of attempt 1 of b1 as Sizes lists it, whole.
func wholeLogs(t *testing.T, s *Store) string {
	var b strings.Builder
	streams, err := s.Sizes("b1", 1)
	if err != nil {
		t.Error(err)
	}
	for _, st := range streams {
		p := make([]byte, st.Size)
		n, err := s.ReadAt(st.Key, 0, p)
		var followed bytes.Buffer
		ferr := s.Follow(context.Background(), st.Key, 0, &followed, closed)
		fmt.Fprintf(&b, "%s %d: %v %q; followed %v, equal %v\n", st.Key, st.Size, err, p[:n], ferr, bytes.Equal(followed.Bytes(), p[:n]))
	}
	return b.String()
}

// Two coordinators share the live logs and the blob store: one looks for
// an attempt's logs before any is written (nothing stored), the other
// archives them once written; the first then reads them from the archive.
// (It kept "no archive" from its first look, and a standby read an ended
// build's logs as empty.)
func TestAnAttemptArchivedByAnotherStoreIsReadFromTheArchive(t *testing.T) {
	eachBackend(t, func(t *testing.T, blobs blob.Store) {
		ctx := context.Background()
		live := openDisk(t, t.TempDir())
		standby, leader := New(live, blobs), New(live, blobs)
		key := logstore.Key{Build: "b1", Attempt: 1, Job: "talk", Stream: logstore.Stdout}
		p := make([]byte, 64)
		if n, err := standby.ReadAt(key, 0, p); n != 0 || err != io.EOF {
			t.Fatalf("before any log: %d %v, want nothing stored", n, err)
		}
		want := []byte("line 1\nline 2\nline 3\n")
		if _, err := leader.Write(key, 0, want); err != nil {
			t.Fatal(err)
		}
		if err := leader.Archive(ctx, "b1", 1); err != nil {
			t.Fatal(err)
		}
		n, err := standby.ReadAt(key, 0, p)
		if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], want) {
			t.Errorf("read through the other store: %q %v, want %q", p[:n], err, want)
		}
		if size, err := standby.Size(key); err != nil || size != int64(len(want)) {
			t.Errorf("its size through the other store: %d %v", size, err)
		}
	})
}
