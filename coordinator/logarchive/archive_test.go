package logarchive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
)

// onDiskNow lists what the log store's folder holds of a build.
func onDiskNow(t *testing.T, disk *logstore.Store, build string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(disk.Root(), "builds", build), func(p string, _ os.DirEntry, err error) error {
		if err == nil {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestArchivedLogsReadAsTheyDidOnDisk(t *testing.T) {
	eachBackend(t, func(t *testing.T, blobs blob.Store) {
		ctx := context.Background()
		disk := openDisk(t, t.TempDir())
		s := New(disk, blobs)
		writeBuild(t, s, "b1", 1)
		writeBuild(t, s, "b1", 2)
		before := readAll(t, s, "b1", 1)
		if !strings.Contains(before, "merged: {Command:0 Start:true") || !strings.Contains(before, "long/out: 798777 bytes") {
			t.Fatalf("the logs read as:\n%.2000s", before)
		}
		if err := s.Archive(ctx, "b1", 1); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, s, "b1", 1); got != before {
			t.Errorf("archived, the logs read otherwise: %s", diff(got, before))
		}
		// The second attempt runs on, on disk.
		if got, _ := disk.Attempts("b1"); !slices.Equal(got, []int{2}) {
			t.Errorf("on disk after archiving attempt 1: attempts %v", got)
		}
		// A store that never saw the move (a restart) reads the same.
		if got := readAll(t, New(disk, blobs), "b1", 1); got != before {
			t.Errorf("after a restart, the logs read otherwise: %s", diff(got, before))
		}
		if err := s.Archive(ctx, "b1", 2); err != nil {
			t.Fatal(err)
		}
		if left := onDiskNow(t, disk, "b1"); len(left) != 0 {
			t.Errorf("on disk after archiving the build: %v", left)
		}
		info, err := blobs.Stat(ctx, Key("b1", 1))
		if err != nil || info.Size == 0 || info.Size > 798777/2 {
			t.Errorf("the archive: %+v, %v: want it compressed", info, err)
		}
		// Archiving again changes nothing.
		if err := s.Archive(ctx, "b1", 1); err != nil {
			t.Error(err)
		}
		if got := readAll(t, New(disk, blobs), "b1", 1); got != before {
			t.Errorf("archived twice, the logs read otherwise: %s", diff(got, before))
		}
	})
}

// diff shows the first line where got and want part.
func diff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got  %.300s\n want %.300s", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}

func TestACrashBetweenPutAndRemovalIsFinishedNextTime(t *testing.T) {
	eachBackend(t, func(t *testing.T, blobs blob.Store) {
		ctx := context.Background()
		disk := openDisk(t, t.TempDir())
		s := New(disk, blobs)
		writeBuild(t, s, "b1", 1)
		before := readAll(t, s, "b1", 1)
		crash := errors.New("killed")
		s.beforeRemove = func() error { return crash }
		if err := s.Archive(ctx, "b1", 1); !errors.Is(err, crash) {
			t.Fatalf("Archive = %v", err)
		}
		put, err := blobs.Stat(ctx, Key("b1", 1))
		if err != nil {
			t.Fatalf("the blob was not put: %v", err)
		}
		if len(onDiskNow(t, disk, "b1")) == 0 {
			t.Fatal("the files went before the crash")
		}
		// Both are there: the logs read the same, and the next start
		// finishes the move without putting them again.
		restarted := New(disk, noPuts{blobs, t})
		if got := readAll(t, restarted, "b1", 1); got != before {
			t.Errorf("between put and removal, the logs read otherwise: %s", diff(got, before))
		}
		if err := restarted.Archive(ctx, "b1", 1); err != nil {
			t.Fatal(err)
		}
		if left := onDiskNow(t, disk, "b1"); len(left) != 0 {
			t.Errorf("on disk after the move was finished: %v", left)
		}
		if again, err := blobs.Stat(ctx, Key("b1", 1)); err != nil || again.SHA256 != put.SHA256 {
			t.Errorf("the blob after the move was finished: %+v, %v; put %+v", again, err, put)
		}
		if got := readAll(t, New(disk, blobs), "b1", 1); got != before {
			t.Errorf("after the move was finished, the logs read otherwise: %s", diff(got, before))
		}
	})
}

// noPuts is a store that fails the test on a put.
type noPuts struct {
	blob.Store
	t *testing.T
}

func (s noPuts) Put(ctx context.Context, key string, r io.Reader) (blob.Info, error) {
	s.t.Errorf("a second put of %s", key)
	return s.Store.Put(ctx, key, r)
}
