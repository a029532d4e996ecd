package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oracle/oci-go-sdk/v65/common"

	"github.com/monkeyci/monkeyci/internal/ocitest"
)

// The OCI store keeps the contract through the real SDK, against a fake
// bucket that checks every request's signature.
func TestOCIContract(t *testing.T) {
	contract(t, func(t *testing.T) Store { return newFakeObjectStorage(t).open(t) })
}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// A blob larger than a part goes up as a multipart upload, a part at a
// time; a small one in one request.
func TestOCIPutsALargeBlobInParts(t *testing.T) {
	ctx := context.Background()
	f := newFakeObjectStorage(t)
	s := f.open(t)
	data := randomBytes(2*partSize+1000, 2)
	info, err := s.Put(ctx, "caches/big", bytes.NewReader(data))
	if err != nil || info.Size != int64(len(data)) || info.SHA256 != sha256Hex(string(data)) {
		t.Fatalf("Put = %+v, %v", info, err)
	}
	if n := f.count("POST", "/u"); n != 2 { // one create, one commit
		t.Errorf("%d POSTs to /u, want a create and a commit", n)
	}
	if n := f.count("PUT", "/u/o/caches/big"); n != 3 {
		t.Errorf("%d parts uploaded, want 3 of at most %d bytes", n, partSize)
	}
	if n := f.count("PUT", "/o/o/caches/big"); n != 0 {
		t.Errorf("%d whole-object PUTs of a blob larger than a part", n)
	}
	rc, _, err := s.Get(ctx, "caches/big")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Errorf("read back %d bytes, not what was put", len(got))
	}

	if _, err := s.Put(ctx, "caches/small", strings.NewReader("small")); err != nil {
		t.Fatal(err)
	}
	if n := f.count("", "/u/o/caches/small"); n != 0 {
		t.Errorf("%d multipart calls for a small blob", n)
	}
}

// cutReader yields n bytes, then runs cut and fails.
type cutReader struct {
	n   int
	cut func()
}

func (r *cutReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		r.cut()
		return 0, errors.New("the agent died")
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

// A multipart upload that fails after its first part, by a failing reader
// or a canceled context, is aborted: no parts linger, no blob counts.
func TestOCIAbortsAFailedMultipartUpload(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cancel bool
	}{{"reader fails", false}, {"context canceled", true}} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeObjectStorage(t)
			s := f.open(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := &cutReader{n: partSize + 10, cut: func() {}}
			if tt.cancel {
				r.cut = cancel
			}
			if _, err := s.Put(ctx, "caches/cut", r); err == nil {
				t.Fatal("a Put cut short succeeded")
			}
			if n := f.count("PUT", "/u/o/caches/cut"); n != 1 {
				t.Errorf("%d parts went up before the cut, want 1", n)
			}
			if n := f.count("DELETE", "/u/o/caches/cut"); n != 1 {
				t.Errorf("%d aborts, want 1", n)
			}
			f.set(func(f *fakeObjectStorage) {
				if len(f.uploads) != 0 || f.objects["o/caches/cut"] != nil {
					t.Errorf("after the cut: %d uploads open, object %v", len(f.uploads), f.objects["o/caches/cut"] != nil)
				}
			})
			if _, err := s.Stat(context.Background(), "caches/cut"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Stat after a cut Put: %v", err)
			}
		})
	}
}

// The fake refuses what real OCI would: no signature, another key's, a
// body other than the one signed. So an unsigned call in any other test
// would fail it.
func TestOCIFakeRefusesBadSignatures(t *testing.T) {
	f := newFakeObjectStorage(t)
	f.set(func(f *fakeObjectStorage) { f.rejectsOK = true })
	bucket := f.srv.URL + "/n/" + f.namespace + "/b/" + f.bucket

	resp, err := http.Get(bucket + "/o/o/anything")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an unsigned GET: %d, want 401", resp.StatusCode)
	}

	other, err := ocitest.NewKey("ocid1.user.oc1..intruder")
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenOCI(context.Background(), OCIConfig{Namespace: f.namespace, Bucket: f.bucket,
		ConfigurationProvider: other.Credentials(), Endpoint: f.srv.URL})
	if !hasStatus(err, http.StatusUnauthorized) {
		t.Errorf("OpenOCI with another key: %v, want a 401", err)
	}

	// Signed for one body, sent with another of the same length.
	req, _ := http.NewRequest(http.MethodPost, bucket+"/u", strings.NewReader(`{"object":"o/a"}`))
	req.Header.Set("Content-Type", "application/json")
	if err := common.DefaultRequestSigner(f.key.Credentials()).Sign(req); err != nil {
		t.Fatal(err)
	}
	req.Body = io.NopCloser(strings.NewReader(`{"object":"o/b"}`))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a body other than the signed one: %d, want 401", resp.StatusCode)
	}
	f.set(func(f *fakeObjectStorage) {
		if f.rejected != 3 || len(f.uploads) != 0 {
			t.Errorf("%d requests rejected, %d uploads made; want 3 and none", f.rejected, len(f.uploads))
		}
	})
}

func TestParseOCIURL(t *testing.T) {
	c, err := ParseOCIURL("oci://ns/bucket?region=eu-frankfurt-1&config=/etc/oci/config&profile=CI&endpoint=https://os.example")
	if err != nil || c != (OCIConfig{Namespace: "ns", Bucket: "bucket", Region: "eu-frankfurt-1",
		ConfigFile: "/etc/oci/config", Profile: "CI", Endpoint: "https://os.example"}) {
		t.Errorf("ParseOCIURL = %+v, %v", c, err)
	}
	if c, err := ParseOCIURL("oci://ns/bucket?principal=instance"); err != nil || !c.InstancePrincipal {
		t.Errorf("principal=instance: %+v, %v", c, err)
	}
	for _, bad := range []string{"oci://", "oci://ns", "oci://ns/", "oci://ns/b/extra", "oci:///bucket",
		"oci://ns/b?principal=resource", "oci://ns/b?profle=CI", "s3://ns/b", "%zz"} {
		if c, err := ParseOCIURL(bad); err == nil {
			t.Errorf("ParseOCIURL(%q) = %+v, want it refused", bad, c)
		}
	}
}

// Open takes an oci:// URL to the OCI store, signing with the key and
// profile of the config file it names.
func TestOpenChoosesOCI(t *testing.T) {
	ctx := context.Background()
	f := newFakeObjectStorage(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(keyFile, []byte(f.key.PEM), 0o600); err != nil {
		t.Fatal(err)
	}
	// DEFAULT is another user: a store that ignored profile= would sign
	// as it, and the fake would refuse.
	config := fmt.Sprintf(`[DEFAULT]
user=ocid1.user.oc1..nobody
fingerprint=%[1]s
tenancy=%[2]s
region=us-ashburn-1
key_file=%[3]s

[CI]
user=%[4]s
fingerprint=%[1]s
tenancy=%[2]s
region=us-ashburn-1
key_file=%[3]s
`, f.key.Fingerprint, f.key.Tenancy, keyFile, f.key.User)
	configFile := filepath.Join(dir, "config")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	query := "?config=" + url.QueryEscape(configFile) + "&profile=CI&endpoint=" + url.QueryEscape(f.srv.URL)
	s, err := Open(ctx, "oci://"+f.namespace+"/"+f.bucket+query, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*OCI); !ok {
		t.Fatalf("Open(oci://...) = %T", s)
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("v")); err != nil {
		t.Errorf("Put through the opened store: %v", err)
	}
	if _, err := Open(ctx, "oci://"+f.namespace+"/nope"+query, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no such bucket") {
		t.Errorf("Open of a missing bucket: %v", err)
	}
}
