package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/s3test"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// Every backend keeps the same contract: one suite, run against each.
func TestDirContract(t *testing.T) {
	contract(t, func(t *testing.T) Store {
		d, err := OpenDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

func TestS3Contract(t *testing.T) {
	srv := s3test.Start(t)
	contract(t, func(t *testing.T) Store {
		c, err := ParseS3URL(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		c.AccessKey, c.SecretKey = srv.AccessKey, srv.SecretKey
		s, err := OpenS3(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		// One bucket for every subtest: each keeps to a prefix of its own.
		return prefixed{s, strings.ReplaceAll(t.Name(), "/", "_") + "/"}
	})
}

// prefixed puts a store's keys under a prefix, so that subtests sharing a
// bucket do not meet.
type prefixed struct {
	Store
	p string
}

func (s prefixed) Put(ctx context.Context, k string, r io.Reader) (Info, error) {
	i, err := s.Store.Put(ctx, s.p+k, r)
	i.Key = strings.TrimPrefix(i.Key, s.p)
	return i, err
}
func (s prefixed) Get(ctx context.Context, k string) (io.ReadCloser, Info, error) {
	rc, i, err := s.Store.Get(ctx, s.p+k)
	i.Key = strings.TrimPrefix(i.Key, s.p)
	return rc, i, err
}
func (s prefixed) Stat(ctx context.Context, k string) (Info, error) {
	i, err := s.Store.Stat(ctx, s.p+k)
	i.Key = strings.TrimPrefix(i.Key, s.p)
	return i, err
}
func (s prefixed) Delete(ctx context.Context, k string) error { return s.Store.Delete(ctx, s.p+k) }
func (s prefixed) List(ctx context.Context, prefix string) ([]Info, error) {
	is, err := s.Store.List(ctx, s.p+prefix)
	for i := range is {
		is[i].Key = strings.TrimPrefix(is[i].Key, s.p)
	}
	return is, err
}

func contract(t *testing.T, open func(t *testing.T) Store) {
	ctx := context.Background()
	t.Run("PutGetStat", func(t *testing.T) {
		s := open(t)
		// Larger than a multipart upload's part: streamed in several.
		data := make([]byte, partSize+partSize/2)
		rand.NewChaCha8([32]byte{1}).Read(data)
		want := sha256.Sum256(data)
		info, err := s.Put(ctx, "caches/branch/main/deps.tar", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if info.Key != "caches/branch/main/deps.tar" || info.Size != int64(len(data)) || info.SHA256 != hex.EncodeToString(want[:]) {
			t.Errorf("Put = %+v", info)
		}
		if crc := fmt.Sprintf("%08x", crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))); info.CRC32C != crc {
			t.Errorf("Put's CRC32C %q, want %q", info.CRC32C, crc)
		}
		if st, err := s.Stat(ctx, "caches/branch/main/deps.tar"); err != nil || st.CRC32C != info.CRC32C || st.SHA256 != info.SHA256 {
			t.Errorf("Stat = %+v %v, want the digests Put gave", st, err)
		}
		rc, got, err := s.Get(ctx, "caches/branch/main/deps.tar")
		if err != nil {
			t.Fatal(err)
		}
		read, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(read, data) || got.Size != info.Size || got.SHA256 != info.SHA256 {
			t.Errorf("Get: %d bytes (equal: %v), %+v, %v", len(read), bytes.Equal(read, data), got, err)
		}
		if st, err := s.Stat(ctx, "caches/branch/main/deps.tar"); err != nil || st.Size != info.Size || st.SHA256 != info.SHA256 {
			t.Errorf("Stat = %+v, %v", st, err)
		}
	})
	t.Run("Replace", func(t *testing.T) {
		s := open(t)
		for _, v := range []string{"first", "second, longer"} {
			if _, err := s.Put(ctx, "k", strings.NewReader(v)); err != nil {
				t.Fatal(err)
			}
		}
		rc, info, err := s.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		sum := sha256.Sum256(b)
		if string(b) != "second, longer" || info.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("after a replace: %q, %+v", b, info)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		s := open(t)
		if _, _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get: %v", err)
		}
		if _, err := s.Stat(ctx, "a/nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat: %v", err)
		}
		if err := s.Delete(ctx, "nope"); err != nil {
			t.Errorf("Delete of nothing: %v", err)
		}
	})
	t.Run("ListAndDelete", func(t *testing.T) {
		s := open(t)
		for _, k := range []string{"logs/b2/1/out", "logs/b1/1/out", "logs/b1/1/err", "logsx", "artifacts/b1/bin"} {
			if _, err := s.Put(ctx, k, strings.NewReader(k)); err != nil {
				t.Fatal(err)
			}
		}
		keys := func(prefix string) string {
			is, err := s.List(ctx, prefix)
			if err != nil {
				t.Fatal(err)
			}
			var ks []string
			for _, i := range is {
				ks = append(ks, i.Key)
				if i.Size != int64(len(i.Key)) || i.SHA256 == "" {
					t.Errorf("listed %+v", i)
				}
			}
			return strings.Join(ks, " ")
		}
		if got := keys("logs/"); got != "logs/b1/1/err logs/b1/1/out logs/b2/1/out" {
			t.Errorf("List(logs/) = %s", got)
		}
		if got := keys("logs/b1/"); got != "logs/b1/1/err logs/b1/1/out" {
			t.Errorf("List(logs/b1/) = %s", got)
		}
		if err := s.Delete(ctx, "logs/b1/1/out"); err != nil {
			t.Fatal(err)
		}
		if got := keys("logs/b1"); got != "logs/b1/1/err" {
			t.Errorf("after a delete, List(logs/b1) = %s", got)
		}
		if _, err := s.Stat(ctx, "logs/b1/1/out"); !errors.Is(err, ErrNotFound) {
			t.Errorf("a deleted blob: %v", err)
		}
	})
	t.Run("AFailedPutLeavesNothing", func(t *testing.T) {
		s := open(t)
		if _, err := s.Put(ctx, "cut", io.MultiReader(strings.NewReader("half of it"), failing{})); err == nil {
			t.Fatal("a Put whose reader failed succeeded")
		}
		if _, err := s.Stat(ctx, "cut"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after a failed Put: %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.Put(cctx, "canceled", strings.NewReader("x")); err == nil {
			t.Error("a Put with a canceled context succeeded")
		}
		if _, err := s.Stat(ctx, "canceled"); !errors.Is(err, ErrNotFound) {
			t.Errorf("after a canceled Put: %v", err)
		}
	})
	t.Run("PutVerifiedRefusesAMismatch", func(t *testing.T) {
		s := open(t)
		body := "an artifact"
		right := Info{Size: int64(len(body)), SHA256: sha256Hex(body)}
		for _, want := range []Info{{Size: right.Size + 1, SHA256: right.SHA256}, {Size: right.Size, SHA256: sha256Hex("other")}, {Size: right.Size, SHA256: right.SHA256, CRC32C: "00000000"}} {
			_, err := PutVerified(ctx, s, "artifacts/b/a.tar", strings.NewReader(body), want)
			var mismatch *MismatchError
			if !errors.As(err, &mismatch) {
				t.Errorf("PutVerified of other bytes than said (%+v): %v", want, err)
			}
			if info, err := s.Stat(ctx, "artifacts/b/a.tar"); !errors.Is(err, ErrNotFound) {
				t.Errorf("after a refused upload: %+v %v", info, err)
			}
		}
		if info, err := PutVerified(ctx, s, "artifacts/b/a.tar", strings.NewReader(body), right); err != nil || info.SHA256 != right.SHA256 {
			t.Errorf("PutVerified of what was said: %+v %v", info, err)
		}
	})
	t.Run("BadKeys", func(t *testing.T) {
		s := open(t)
		for _, k := range []string{"", "/abs", "a/../../etc", "a//b", "./a", "a\\b", "a\x00b", "a/", strings.Repeat("x", 256)} {
			if _, err := s.Put(ctx, k, strings.NewReader("x")); err == nil {
				t.Errorf("Put(%q) was taken", k)
			}
			if _, err := s.Stat(ctx, k); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("Stat(%q) = %v, want the key refused", k, err)
			}
		}
	})
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("the agent died") }

func TestOpenChoosesTheBackend(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	for _, c := range []struct{ url, want string }{
		{"", "*blob.Dir"},
		{"file:///" + strings.TrimPrefix(t.TempDir(), "/"), "*blob.Dir"},
		{"file://relative/dir", "*blob.Dir"},
	} {
		s, err := Open(ctx, c.url, data)
		if err != nil || fmt.Sprintf("%T", s) != c.want {
			t.Errorf("Open(%q) = %T, %v; want %s", c.url, s, err, c.want)
		}
	}
	for _, bad := range []string{"ftp://x", "s3://", "s3://bucket", "s3://bucket/path?endpoint=h:1", "oci://ns", "oci://ns/b?bogus=1", "%zz"} {
		if _, err := Open(ctx, bad, data); err == nil {
			t.Errorf("Open(%q) took it", bad)
		}
	}
}

// A URL handed to an agent reads the blob without the bucket's keys, and
// stops working when its time is over.
func TestS3URLsReadWithoutKeysUntilTheyExpire(t *testing.T) {
	srv := s3test.Start(t)
	ctx := context.Background()
	c, _ := ParseS3URL(srv.URL())
	c.AccessKey, c.SecretKey = srv.AccessKey, srv.SecretKey
	s, err := OpenS3(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "artifacts/b1/bin", strings.NewReader("the build's output")); err != nil {
		t.Fatal(err)
	}
	u, err := s.GetURL(ctx, "artifacts/b1/bin", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	get := func() (int, string) {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusOK || body != "the build's output" {
		t.Fatalf("GET of a fresh URL: %d %q", code, body)
	}
	// An upload through a URL counts only once confirmed, and only the
	// bytes whose digest was signed into it go in.
	body := "uploaded by an agent"
	want := Info{Size: int64(len(body)), SHA256: sha256Hex(body)}
	upload := func(up Upload, body string) int {
		req, _ := http.NewRequest(http.MethodPut, up.URL, strings.NewReader(body))
		for k, v := range up.Headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	prepare := func() Upload {
		up, err := s.PutURL(ctx, "artifacts/b1/bin", time.Minute, want)
		if err != nil {
			t.Fatal(err)
		}
		return up
	}
	first := prepare()
	lateBody := "an ended attempt's bytes"
	late, err := s.PutURL(ctx, "artifacts/b1/bin", time.Minute, Info{Size: int64(len(lateBody)), SHA256: sha256Hex(lateBody)})
	if err != nil {
		t.Fatal(err)
	}
	if code := upload(first, "other bytes, same length"); code == http.StatusOK {
		t.Errorf("a PUT of other bytes than were signed for: %d", code)
	}
	if code := upload(first, body); code != http.StatusOK {
		t.Fatalf("PUT with a signed URL: %d", code)
	}
	if _, got := get(); got != "the build's output" {
		t.Errorf("after a signed PUT, before Confirm, the blob holds %q: want it untouched", got)
	}
	if _, err := s.Confirm(ctx, "artifacts/b1/bin", first.ID, Info{Size: want.Size + 1, SHA256: want.SHA256}); err == nil {
		t.Error("Confirm of another size than was put succeeded")
	}
	second := prepare()
	if code := upload(second, body); code != http.StatusOK {
		t.Fatalf("PUT with a signed URL: %d", code)
	}
	if info, err := s.Confirm(ctx, "artifacts/b1/bin", second.ID, want); err != nil || info.Size != want.Size {
		t.Fatalf("Confirm: %+v %v", info, err)
	}
	if info, err := s.Stat(ctx, "artifacts/b1/bin"); err != nil || info.SHA256 != want.SHA256 {
		t.Errorf("after Confirm: %+v %v", info, err)
	}
	// A URL used after another upload was confirmed changes nothing.
	if code := upload(late, lateBody); code != http.StatusOK {
		t.Fatalf("PUT with a late URL: %d", code)
	}
	if _, got := get(); got != body {
		t.Errorf("after a late PUT the blob holds %q, want %q", got, body)
	}
	if _, err := s.Confirm(ctx, "artifacts/b1/bin", "../../o/x", want); err == nil {
		t.Error("Confirm of an upload id that is a path succeeded")
	}
	if info, err := s.Stat(ctx, "artifacts/b1/bin"); err != nil || info.SHA256 != want.SHA256 {
		t.Errorf("after a late upload: %+v %v", info, err)
	}
	wait.For(t, "the URL to stop working once its 5 s are over", func() bool {
		code, _ := get()
		return code == http.StatusForbidden
	})
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
