package pgstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/internal/pgtest"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/wait"
)

func TestLogsAreWrittenOnceByOffsetAndReadBack(t *testing.T) {
	srv := pgtest.Start(t)
	l := openOn(t, srv.NewDatabase(t)).Logs()
	key := logstore.Key{Build: "b1", Attempt: 1, Job: "test", Stream: logstore.Stdout}
	for _, w := range []struct {
		at   int64
		data string
		size int64
		err  error
	}{
		{0, "hello ", 6, nil},
		{0, "hello world\n", 12, nil}, // a resend that goes past the end: the rest is added
		{6, "world", 12, nil},         // wholly stored: nothing changes
		{20, "late", 12, logstore.ErrGap},
		{12, "bye\n", 16, nil},
	} {
		size, err := l.Write(key, w.at, []byte(w.data))
		if size != w.size || !errors.Is(err, w.err) && (err != nil || w.err != nil) {
			t.Errorf("Write(%d, %q) = %d, %v; want %d, %v", w.at, w.data, size, err, w.size, w.err)
		}
	}
	for _, r := range []struct {
		at   int64
		n    int
		want string
		eof  bool
	}{
		{0, 16, "hello world\nbye\n", false},
		{3, 6, "lo wor", false}, // across two chunks
		{10, 100, "d\nbye\n", true},
		{16, 4, "", true},
	} {
		p := make([]byte, r.n)
		n, err := l.ReadAt(key, r.at, p)
		if string(p[:n]) != r.want || (err == io.EOF) != r.eof || err != nil && err != io.EOF {
			t.Errorf("ReadAt(%d, %d) = %q, %v; want %q (EOF %v)", r.at, r.n, p[:n], err, r.want, r.eof)
		}
	}
	if _, err := l.Write(logstore.Key{Build: "../x", Attempt: 1, Stream: logstore.Stdout}, 0, []byte("x")); !errors.Is(err, logstore.ErrInvalid) {
		t.Errorf("a hostile build id: %v, want ErrInvalid", err)
	}
	_, _ = l.Write(logstore.Key{Build: "b1", Attempt: 2, Stream: logstore.Stderr}, 0, []byte("script\n"))
	_, _ = l.Write(logstore.Key{Build: "b0", Attempt: 1, Stream: logstore.Stderr}, 0, []byte("x"))
	sizes, err := l.Sizes("b1", 1)
	if err != nil || len(sizes) != 1 || sizes[0].Key != key || sizes[0].Size != 16 {
		t.Errorf("Sizes = %+v, %v", sizes, err)
	}
	if as, err := l.Attempts("b1"); err != nil || fmt.Sprint(as) != "[1 2]" {
		t.Errorf("Attempts = %v, %v", as, err)
	}
	if bs, err := l.Builds(); err != nil || fmt.Sprint(bs) != "[b0 b1]" {
		t.Errorf("Builds = %v, %v", bs, err)
	}
	if bs, err := l.WithLogs([]string{"b1", "none", "b0"}); err != nil || len(bs) != 2 || !slices.Contains(bs, "b0") || !slices.Contains(bs, "b1") {
		t.Errorf("WithLogs = %v, %v; want b0 and b1", bs, err)
	}
	if err := l.RemoveAttempt("b1", 1); err != nil {
		t.Fatal(err)
	}
	if size, err := l.Size(key); size != 0 || err != nil {
		t.Errorf("size after RemoveAttempt: %d, %v", size, err)
	}
	if as, _ := l.Attempts("b1"); fmt.Sprint(as) != "[2]" {
		t.Errorf("attempts after RemoveAttempt: %v", as)
	}
}

// What one coordinator stores, another follows as it comes, byte for
// byte, while both take resends of the same chunks.
func TestLogsWrittenThroughOneCoordinatorAreFollowedFromAnother(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	a, b := openOn(t, dsn).Logs(), openOn(t, dsn).Logs()
	key := logstore.Key{Build: "b", Attempt: 1, Job: "j", Stream: logstore.Stdout}
	var want strings.Builder
	for i := range 400 {
		fmt.Fprintf(&want, "line %d of the job's output\n", i)
	}
	all := []byte(want.String())

	ended := make(chan struct{})
	var got syncbuf.Buffer
	followed := make(chan error, 1)
	go func() { followed <- b.Follow(context.Background(), key, 0, &got, ended) }()

	// Two writers resend overlapping chunks, as an agent does after a
	// reconnection to the other coordinator.
	var wg sync.WaitGroup
	for w, l := range []*Logs{a, b} {
		wg.Go(func() {
			for at := 0; at < len(all); {
				end := min(at+700+w*300, len(all))
				size, err := l.Write(key, int64(at), all[at:end])
				if err != nil && !errors.Is(err, logstore.ErrGap) {
					t.Error(err)
					return
				}
				at = int(min(size, int64(end)))
			}
		})
	}
	wg.Wait()
	wait.Within(t, 10*time.Second, "the follower to catch up", func() bool { return len(got.String()) == len(all) })
	close(ended)
	if err := <-followed; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal([]byte(got.String()), all) {
		t.Errorf("followed %d bytes that differ from the %d written", len(got.String()), len(all))
	}
}
