package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tier keeps the most recently used caches within its bound.
func TestTheTierDropsTheLeastRecentlyUsedFirst(t *testing.T) {
	dir := t.TempDir()
	tr := &tier{dir: dir, max: 250}
	files := map[string]string{}
	for i, name := range []string{"old", "mid", "new"} {
		file := CacheFile(dir, "repo", "branch:main", name)
		if _, err := writeArchive(file, nil, func(w io.Writer) error {
			_, err := w.Write([]byte(strings.Repeat("x", 100)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(time.Duration(i-10) * time.Minute)
		os.Chtimes(file, at, at)
		files[name] = file
	}
	tr.used(files["old"]) // restored just now: the most recent
	removed, err := tr.trim()
	if err != nil || removed != 1 {
		t.Fatalf("trim removed %d (%v), want 1", removed, err)
	}
	for name, want := range map[string]bool{"old": true, "mid": false, "new": true} {
		_, err := os.Stat(files[name])
		if got := err == nil; got != want {
			t.Errorf("%s kept: %v, want %v", name, got, want)
		}
		if !want && digestOf(files[name]) != "" {
			t.Errorf("%s's digest outlived it", name)
		}
	}
}

// fakeBlobs is a store of one archive that counts its reads.
type fakeBlobs struct {
	data  string
	reads int
}

func (f *fakeBlobs) Open(ctx context.Context, a ArchiveRef) (io.ReadCloser, ArchiveInfo, error) {
	if f.data == "" {
		return nil, ArchiveInfo{}, ErrNoArchive
	}
	sum := sha256.Sum256([]byte(f.data))
	return &countingReader{Reader: strings.NewReader(f.data), n: &f.reads}, ArchiveInfo{Size: int64(len(f.data)), SHA256: hex.EncodeToString(sum[:])}, nil
}

func (f *fakeBlobs) Save(context.Context, ArchiveRef, string, ArchiveInfo) error { return nil }

type countingReader struct {
	io.Reader
	n *int
}

func (c *countingReader) Read(p []byte) (int, error) { *c.n++; return c.Reader.Read(p) }
func (c *countingReader) Close() error               { return nil }

// A download is skipped when the tier holds the same digest, and done
// again when the store's archive changed; what arrives must be what the
// store said, or the tier keeps nothing of it.
func TestFetchSkipsWhatTheTierHolds(t *testing.T) {
	file := filepath.Join(t.TempDir(), "deps.tar")
	store := &fakeBlobs{data: "version 1"}
	ref := ArchiveRef{Kind: KindCache, ID: "deps"}
	for i, want := range []bool{true, false} {
		fetched, err := fetchArchive(context.Background(), store, ref, file)
		if err != nil || fetched != want {
			t.Fatalf("fetch %d: fetched %v (%v), want %v", i, fetched, err, want)
		}
	}
	reads := store.reads
	store.data = "version 2"
	if fetched, err := fetchArchive(context.Background(), store, ref, file); err != nil || !fetched || store.reads == reads {
		t.Fatalf("fetch of a changed archive: %v %v", fetched, err)
	}
	if b, _ := os.ReadFile(file); string(b) != "version 2" {
		t.Errorf("the tier holds %q", b)
	}
	// A store whose bytes are not what it said: nothing is kept.
	bad := &lyingBlobs{}
	if _, err := fetchArchive(context.Background(), bad, ref, file+"2"); err == nil {
		t.Error("a fetch of other bytes than said succeeded")
	}
	if _, err := os.Stat(file + "2"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused fetch left a file: %v", err)
	}
	if _, err := fetchArchive(context.Background(), &fakeBlobs{}, ref, file+"3"); !errors.Is(err, ErrNoArchive) {
		t.Errorf("fetch of nothing: %v", err)
	}
}

type lyingBlobs struct{ fakeBlobs }

func (l *lyingBlobs) Open(ctx context.Context, a ArchiveRef) (io.ReadCloser, ArchiveInfo, error) {
	return io.NopCloser(strings.NewReader("not it")), ArchiveInfo{Size: 6, SHA256: strings.Repeat("0", 64)}, nil
}

// tee gives the bytes to its consumer as they are kept, and never hangs on
// a consumer that stops early, whether it fails or is merely done.
func TestTeeEndsWhateverItsConsumerDoes(t *testing.T) {
	data := strings.Repeat("archive bytes ", 1<<16) // ~900 KB: more than any pipe holds
	tests := []struct {
		name    string
		consume func(io.Reader) error
		wantErr bool
	}{
		{"reads all", func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }, false},
		{"reads a part and is done", func(r io.Reader) error { _, err := r.Read(make([]byte, 10)); return err }, false},
		{"fails at once", func(io.Reader) error { return errors.New("refused") }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var kept strings.Builder
			err := tee(strings.NewReader(data), &kept, tc.consume)
			if (err != nil) != tc.wantErr {
				t.Fatalf("tee: %v, want an error: %v", err, tc.wantErr)
			}
			if !tc.wantErr && kept.String() != data {
				t.Errorf("kept %d bytes of %d", kept.Len(), len(data))
			}
		})
	}
}

// A fetched archive is checked by its CRC32C when the store knows it, by
// its sha256 when not: other bytes than said are refused either way.
func TestPlaceFetchedChecksWhatArrives(t *testing.T) {
	data := strings.Repeat("cache bytes ", 1<<15)
	sum := sha256.Sum256([]byte(data))
	sha := hex.EncodeToString(sum[:])
	crc := fmt.Sprintf("%08x", crc32.Checksum([]byte(data), castagnoli))
	consume := func(r io.Reader) error { _, err := io.Copy(io.Discard, r); return err }
	for _, tc := range []struct {
		name string
		info ArchiveInfo
		ok   bool
	}{
		{"crc32c", ArchiveInfo{Size: int64(len(data)), SHA256: sha, CRC32C: crc}, true},
		{"sha256 only", ArchiveInfo{Size: int64(len(data)), SHA256: sha}, true},
		{"another crc32c", ArchiveInfo{Size: int64(len(data)), SHA256: sha, CRC32C: "00000000"}, false},
		{"another sha256", ArchiveInfo{Size: int64(len(data)), SHA256: strings.Repeat("0", 64)}, false},
		{"another size", ArchiveInfo{Size: int64(len(data)) - 1, SHA256: sha, CRC32C: crc}, false},
	} {
		err := placeFetched(strings.NewReader(data), tc.info, consume)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

// Writing the bytes a file already holds keeps the file (its inode, so
// its place on disk and in the page cache); other bytes replace it.
func TestWriteArchiveKeepsAFileOfTheSameBytes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.tar")
	write := func(content string) ArchiveInfo {
		t.Helper()
		info, err := writeArchive(file, nil, func(w io.Writer) error {
			_, err := io.WriteString(w, content)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	inode := func() uint64 {
		t.Helper()
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	first := write("same bytes")
	before := inode()
	if again := write("same bytes"); again != first || inode() != before || digestOf(file) != first.SHA256 {
		t.Errorf("the same bytes replaced the file (inode %d, was %d) or changed its info: %+v, %+v", inode(), before, again, first)
	}
	other := write("other bytes")
	if inode() == before || digestOf(file) != other.SHA256 {
		t.Errorf("other bytes did not replace the file: inode %d, digest %s, want %s", inode(), digestOf(file), other.SHA256)
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 2 {
		t.Errorf("left beside the file: %v", entries)
	}
}
