package blobstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T) *Dir {
	t.Helper()
	d, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func get(t *testing.T, s Store, key string) string {
	t.Helper()
	r, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func read(ctx context.Context, s Store, key string) (string, error) {
	r, err := s.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	return string(b), err
}

func put(t *testing.T, s Store, key, data string) {
	t.Helper()
	if err := s.Put(context.Background(), key, strings.NewReader(data)); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func keys(infos []Info) []string {
	out := []string{}
	for _, i := range infos {
		out = append(out, i.Key)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	blobs := map[string]string{
		"a":                             "blob a",
		"a/b":                           "blob a/b", // beside the blob "a"
		"a/b/c":                         "blob a/b/c",
		"artifacts/b42/report.html":     "<html>",
		"artifacts/b42/empty":           "",
		"caches/repo-1/go-mod.tar.zst":  strings.Repeat("x", 1<<20+17),
		"caches/repo-1/.hidden":         "dot",
		"caches/repo-1/..x":             "dots",
		"caches/repo-10/a":              "other repo",
		strings.Repeat("s/", 100) + "z": "deep",
	}
	for k, v := range blobs {
		put(t, d, k, v)
	}
	for k, v := range blobs {
		if got := get(t, d, k); got != v {
			t.Errorf("Get(%q) = %q, want %q", k, trunc(got), trunc(v))
		}
		info, err := d.Stat(ctx, k)
		if err != nil || info.Key != k || info.Size != int64(len(v)) {
			t.Errorf("Stat(%q) = %+v, %v", k, info, err)
		}
	}

	// Replace.
	put(t, d, "a/b", "new a/b")
	if got := get(t, d, "a/b"); got != "new a/b" {
		t.Errorf("after replace: %q", got)
	}

	// Missing blobs.
	for _, k := range []string{"missing", "a/missing", "a/b/c/d", "artifacts", "artifacts/b42"} {
		if _, err := d.Get(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", k, err)
		}
		if _, err := d.Stat(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want ErrNotFound", k, err)
		}
	}

	// Delete: idempotent, prunes empty directories, keeps the rest.
	if err := d.Delete(ctx, "artifacts/b42/report.html"); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "artifacts/b42/report.html"); err != nil {
		t.Errorf("Delete again: %v", err)
	}
	if err := d.Delete(ctx, "never/was"); err != nil {
		t.Errorf("Delete of a missing blob: %v", err)
	}
	if _, err := d.Get(ctx, "artifacts/b42/report.html"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete = %v", err)
	}
	if got := get(t, d, "artifacts/b42/empty"); got != "" {
		t.Errorf("sibling: %q", got)
	}
	d.Delete(ctx, "artifacts/b42/empty")
	if _, err := os.Stat(filepath.Join(d.Root(), "blobs", "artifacts")); !os.IsNotExist(err) {
		t.Errorf("empty directories left after Delete: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), "blobs")); err != nil {
		t.Errorf("blobs dir pruned: %v", err)
	}
	d.Delete(ctx, "a")
	if got := get(t, d, "a/b"); got != "new a/b" {
		t.Errorf("a/b after deleting a: %q", got)
	}

	// Put after Delete recreates the directories.
	put(t, d, "artifacts/b42/report.html", "again")
	if got := get(t, d, "artifacts/b42/report.html"); got != "again" {
		t.Errorf("after Put again: %q", got)
	}

	// A new Dir on the same root sees it all.
	d2, err := Open(d.Root())
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, d2, "caches/repo-1/.hidden"); got != "dot" {
		t.Errorf("reopened: %q", got)
	}
}

func trunc(s string) string {
	if len(s) > 20 {
		return fmt.Sprintf("%s...(%d bytes)", s[:20], len(s))
	}
	return s
}

func TestList(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	for _, k := range []string{"a", "a/b", "a/b/c", "ab", "ab/x", "b/x", "caches/r1/k", "caches/r10/k", "caches/r2/k"} {
		put(t, d, k, k)
	}
	// Leftovers that are no blobs are ignored.
	os.WriteFile(filepath.Join(d.Root(), "blobs", "a", "junk"), []byte("x"), 0o644)
	os.Mkdir(filepath.Join(d.Root(), "blobs", "a", "bad dir"), 0o755)
	os.WriteFile(filepath.Join(d.Root(), "blobs", "a", "bad dir", "x~"), []byte("x"), 0o644)
	tests := []struct {
		prefix string
		want   string
	}{
		{"", "[a a/b a/b/c ab ab/x b/x caches/r1/k caches/r10/k caches/r2/k]"},
		{"a", "[a a/b a/b/c ab ab/x]"},
		{"a/", "[a/b a/b/c]"},
		{"a/b", "[a/b a/b/c]"},
		{"a/b/", "[a/b/c]"},
		{"ab", "[ab ab/x]"},
		{"caches/r1", "[caches/r1/k caches/r10/k]"},
		{"caches/r1/", "[caches/r1/k]"},
		{"caches/r", "[caches/r1/k caches/r10/k caches/r2/k]"},
		{"zzz", "[]"},
		{"zzz/", "[]"},
		{"a/b/c/", "[]"},
		{"a/b/c/d/e", "[]"},
	}
	for _, tt := range tests {
		infos, err := d.List(ctx, tt.prefix)
		if err != nil {
			t.Errorf("List(%q): %v", tt.prefix, err)
			continue
		}
		if got := fmt.Sprint(keys(infos)); got != tt.want {
			t.Errorf("List(%q) = %s, want %s", tt.prefix, got, tt.want)
		}
		for _, i := range infos {
			if i.Size != int64(len(i.Key)) {
				t.Errorf("List(%q): %s has size %d", tt.prefix, i.Key, i.Size)
			}
		}
	}
	for _, bad := range []string{"/", "/a", "a//", "../", "../a", "a/../", "./a", "a b", "a~", `a\b`, "a/b~"} {
		if _, err := d.List(ctx, bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("List(%q) = %v, want ErrInvalidKey", bad, err)
		}
	}
}

func TestBadKeys(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	bad := []string{
		"", "/", "/abs", "/etc/passwd", "a/", "a//b", "..", "../x", "a/../b", "a/..", ".", "./a", "a/./b",
		`a\b`, `..\x`, "a b", "a\x00b", "a~", "é", "a:b", "a*",
		strings.Repeat("x", MaxSegment+1),
		strings.Repeat("abcdefgh/", MaxKey/9+1) + "x",
	}
	for _, k := range bad {
		if err := d.Put(ctx, k, strings.NewReader("x")); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", k, err)
		}
		if _, err := d.Get(ctx, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", k, err)
		}
		if _, err := d.Stat(ctx, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", k, err)
		}
		if err := d.Delete(ctx, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
	// Nothing was written anywhere.
	if infos, err := d.List(ctx, ""); err != nil || len(infos) != 0 {
		t.Errorf("blobs after bad puts: %v, %v", keys(infos), err)
	}
	assertNoTemp(t, d)
	if entries, _ := os.ReadDir(filepath.Dir(d.Root())); len(entries) != 1 {
		t.Errorf("something written next to the root: %v", entries)
	}
}

func assertNoTemp(t *testing.T, d *Dir) {
	t.Helper()
	if entries, err := os.ReadDir(filepath.Join(d.Root(), "tmp")); err != nil || len(entries) != 0 {
		t.Errorf("temporary files left: %v, %v", entries, err)
	}
}

// failingReader yields some bytes, then fails.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestPutAtomic(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	boom := errors.New("boom")

	// A failed Put of a new key leaves no blob.
	err := d.Put(ctx, "new/key", &failingReader{data: bytes.Repeat([]byte("x"), 100<<10), err: boom})
	if !errors.Is(err, boom) {
		t.Errorf("Put = %v, want boom", err)
	}
	if _, err := d.Get(ctx, "new/key"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after a failed Put = %v", err)
	}
	if infos, _ := d.List(ctx, ""); len(infos) != 0 {
		t.Errorf("blobs after a failed Put: %v", keys(infos))
	}

	// A failed Put over a blob keeps the old one whole.
	put(t, d, "k", "old content")
	if err := d.Put(ctx, "k", &failingReader{data: []byte("new, partial"), err: boom}); !errors.Is(err, boom) {
		t.Errorf("Put = %v, want boom", err)
	}
	if got := get(t, d, "k"); got != "old content" {
		t.Errorf("after a failed replace: %q", got)
	}

	// A canceled context, before or during the copy.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Put(cctx, "k", strings.NewReader("new")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a canceled ctx = %v", err)
	}
	cctx, cancel = context.WithCancel(ctx)
	r := readerFunc(func(p []byte) (int, error) {
		cancel()
		return copy(p, "abc"), nil
	})
	if err := d.Put(cctx, "k", r); !errors.Is(err, context.Canceled) {
		t.Errorf("Put canceled during the copy = %v", err)
	}
	if got := get(t, d, "k"); got != "old content" {
		t.Errorf("after canceled Puts: %q", got)
	}
	assertNoTemp(t, d)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestPutNeverTorn reads a key while it is replaced over and over: every
// read sees one whole version.
func TestPutNeverTorn(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	if testing.Short() {
		t.Skip("slow")
	}
	version := func(i int) string { return strings.Repeat(fmt.Sprintf("version %d;", i), 20000) }
	put(t, d, "k", version(0))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		defer close(stop)
		for i := 1; i <= 30; i++ {
			if err := d.Put(ctx, "k", strings.NewReader(version(i))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for r := 0; r < 2; r++ {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := read(ctx, d, "k")
				if err != nil {
					t.Error(err)
					return
				}
				var i int
				fmt.Sscanf(got, "version %d;", &i)
				if got != version(i) {
					t.Errorf("read a torn blob of %d bytes", len(got))
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestConcurrent puts, gets, lists and deletes from many goroutines, with
// deletes pruning directories that puts need.
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	d := open(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				k := fmt.Sprintf("shared/dir%d/g%d-%d", i%3, g, i)
				v := fmt.Sprint(g, i)
				if err := d.Put(ctx, k, strings.NewReader(v)); err != nil {
					t.Error(err)
					return
				}
				if got, err := read(ctx, d, k); got != v || err != nil {
					t.Errorf("%s = %q, %v; want %q", k, got, err, v)
				}
				if _, err := d.List(ctx, "shared/"); err != nil {
					t.Error(err)
				}
				if err := d.Delete(ctx, k); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if infos, err := d.List(ctx, ""); err != nil || len(infos) != 0 {
		t.Errorf("left: %v, %v", keys(infos), err)
	}
	assertNoTemp(t, d)
}

func TestGetIsSeekable(t *testing.T) {
	d := open(t)
	put(t, d, "k", "0123456789")
	r, err := d.Get(context.Background(), "k")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rs, ok := r.(io.ReadSeeker)
	if !ok {
		t.Fatal("Get's reader does not seek")
	}
	rs.Seek(5, io.SeekStart)
	if b, _ := io.ReadAll(rs); string(b) != "56789" {
		t.Errorf("after seek: %q", b)
	}
}

func TestOpenCleansOldTemp(t *testing.T) {
	d := open(t)
	old := filepath.Join(d.Root(), "tmp", "put-old")
	fresh := filepath.Join(d.Root(), "tmp", "put-fresh")
	os.WriteFile(old, []byte("x"), 0o644)
	os.WriteFile(fresh, []byte("x"), 0o644)
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, past, past)
	if _, err := Open(d.Root()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old temp file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file (another Put in progress) removed: %v", err)
	}
}
