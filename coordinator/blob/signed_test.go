package blob

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// served is a Dir served at /blobs/ on a test server, with a clock the
// test moves and owners it allows.
func served(t *testing.T) (*Served, *httptest.Server, *time.Time, map[string]bool) {
	t.Helper()
	d, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	allowed := map[string]bool{}
	s := &Served{Dir: d, Prefix: "/blobs/", Secret: []byte("the coordinator's own"),
		Allow: func(o string) bool { return allowed[o] }, Now: func() time.Time { return now }}
	mux := http.NewServeMux()
	mux.Handle("/blobs/", s)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.Base = srv.URL
	return s, srv, &now, allowed
}

func do(t *testing.T, method, url string, body io.Reader, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// A signed URL does what it was signed for, for as long as it was signed
// for and its owner is allowed, and nothing else.
func TestServedURLsDoWhatTheyWereSignedFor(t *testing.T) {
	s, _, now, allowed := served(t)
	const key = "caches/branch:main/a dir/deps é.tar"
	allowed["b1-1"] = true
	put, err := s.SignFor("b1-1", http.MethodPut, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	body := "the cache's bytes"
	if code, msg := do(t, http.MethodPut, put, strings.NewReader(body), http.Header{HeaderSHA256: {digest(body)}}); code != http.StatusCreated {
		t.Fatalf("PUT: %d %s", code, msg)
	}
	get, _ := s.SignFor("b1-1", http.MethodGet, key, time.Minute)
	if code, got := do(t, http.MethodGet, get, nil, nil); code != http.StatusOK || got != body {
		t.Fatalf("GET: %d %q", code, got)
	}
	for name, u := range map[string]string{
		"GET with a PUT URL":   put,
		"another key":          strings.Replace(get, "deps", "other", 1),
		"another owner":        strings.Replace(get, "owner=b1-1", "owner=b2-1", 1),
		"a longer life":        strings.Replace(get, "exp=", "exp=9", 1),
		"no signature":         get[:strings.Index(get, "sig=")],
		"a path out of blobs/": strings.Replace(get, "/blobs/caches", "/blobs/../caches", 1),
	} {
		if code, _ := do(t, http.MethodGet, u, nil, nil); code == http.StatusOK {
			t.Errorf("%s: answered 200", name)
		}
	}
	allowed["b1-1"] = false // the attempt ended
	if code, msg := do(t, http.MethodGet, get, nil, nil); code != http.StatusForbidden || !strings.Contains(msg, "ended") {
		t.Errorf("after its attempt ended: %d %s", code, msg)
	}
	anyone, _ := s.GetURL(context.Background(), key, time.Minute)
	*now = now.Add(2 * time.Minute)
	if code, msg := do(t, http.MethodGet, anyone, nil, nil); code != http.StatusForbidden || !strings.Contains(msg, "expired") {
		t.Errorf("after its time: %d %s", code, msg)
	}
}

// An upload that is not what its sender said, or is cut off half way,
// leaves nothing that counts as stored; the blob before it stays.
func TestServedUploadsAreCheckedBeforeTheyCount(t *testing.T) {
	s, srv, _, _ := served(t)
	const key = "artifacts/b1/bin"
	put, _ := s.PutURL(context.Background(), key, time.Minute)
	if code, _ := do(t, http.MethodPut, put, strings.NewReader("old"), nil); code != http.StatusCreated {
		t.Fatal(code)
	}
	if code, msg := do(t, http.MethodPut, put, strings.NewReader("new bytes"), http.Header{HeaderSHA256: {digest("other bytes")}}); code != http.StatusBadRequest || !strings.Contains(msg, "the sender said") {
		t.Errorf("a wrong digest: %d %s", code, msg)
	}
	// Half of what Content-Length says, then the connection drops: the
	// agent was killed mid-upload.
	path := put[len(srv.URL):]
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n%s", path, strings.Repeat("x", 500))
	c.(*net.TCPConn).CloseWrite()
	if line, _ := bufio.NewReader(c).ReadString('\n'); strings.Contains(line, "201") {
		t.Errorf("a cut upload answered %q", line)
	}
	c.Close()
	rc, info, err := s.Dir.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "old" || info.SHA256 != digest("old") {
		t.Errorf("after refused uploads the blob is %q (%+v)", b, info)
	}
	if _, err := s.Dir.Stat(context.Background(), "artifacts/b1/other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("%v", err)
	}
}
