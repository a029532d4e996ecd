package blob

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// call sends an unsigned request, as an agent does with a URL it was
// handed, and says the status and body.
func call(t *testing.T, method, url string, body string, headers map[string]string) (int, string) {
	t.Helper()
	var r io.Reader
	if method == http.MethodPut {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A URL handed to an agent reads its one object, and stops working when
// its time is over.
func TestOCIURLsReachOnlyTheirObjectUntilTheyExpire(t *testing.T) {
	ctx := context.Background()
	f := newFakeObjectStorage(t)
	s := f.open(t)
	for _, k := range []string{"artifacts/b1/bin", "artifacts/b1/other"} {
		if _, err := s.Put(ctx, k, strings.NewReader("the build's output")); err != nil {
			t.Fatal(err)
		}
	}
	get, err := s.GetURL(ctx, "artifacts/b1/bin", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, http.MethodGet, get, "", nil); code != http.StatusOK || body != "the build's output" {
		t.Fatalf("GET of a fresh URL: %d %q", code, body)
	}
	if code, _ := call(t, http.MethodGet, strings.Replace(get, "/b1/bin", "/b1/other", 1), "", nil); code == http.StatusOK {
		t.Error("a read URL read another object")
	}
	if code, _ := call(t, http.MethodPut, get, "overwritten", nil); code == http.StatusOK {
		t.Error("a read URL wrote")
	}
	f.set(func(f *fakeObjectStorage) { f.skew = 5*time.Minute - time.Second })
	if code, _ := call(t, http.MethodGet, get, "", nil); code != http.StatusOK {
		t.Fatalf("GET just before its time is over: %d", code)
	}
	f.set(func(f *fakeObjectStorage) { f.skew = 5*time.Minute + time.Second })
	if code, _ := call(t, http.MethodGet, get, "", nil); code == http.StatusOK {
		t.Error("a URL still reads after its time is over")
	}
}

// An upload URL writes its own key only: the blob is untouched until a
// Confirm of that upload checks it, which spends the upload and its URL;
// a URL used late changes nothing.
func TestOCIUploadsCountOnlyOnceConfirmed(t *testing.T) {
	ctx := context.Background()
	f := newFakeObjectStorage(t)
	s := f.open(t)
	const key = "artifacts/b1/bin"
	if _, err := s.Put(ctx, key, strings.NewReader("the build's output")); err != nil {
		t.Fatal(err)
	}
	old, _ := s.Stat(ctx, key)
	body := "uploaded by an agent"
	want := Info{Size: int64(len(body)), SHA256: sha256Hex(body)}
	prepare := func(want Info) Upload {
		up, err := s.PutURL(ctx, key, 5*time.Minute, want)
		if err != nil {
			t.Fatal(err)
		}
		return up
	}
	lateBody := "an ended attempt's bytes"
	first, late := prepare(want), prepare(Info{Size: int64(len(lateBody)), SHA256: sha256Hex(lateBody)})
	if code, _ := call(t, http.MethodPut, first.URL, "uploaded by a forger", first.Headers); code == http.StatusOK {
		t.Error("a PUT of other bytes than its headers say was stored")
	}
	for _, elsewhere := range []string{strings.Replace(first.URL, first.ID, late.ID, 1), strings.Replace(first.URL, "/u/"+key+"/"+first.ID, "/o/"+key, 1)} {
		if code, _ := call(t, http.MethodPut, elsewhere, body, first.Headers); code == http.StatusOK {
			t.Errorf("an upload URL wrote elsewhere: %s", elsewhere)
		}
	}
	if code, msg := call(t, http.MethodPut, first.URL, body, first.Headers); code != http.StatusOK {
		t.Fatalf("PUT to an upload URL: %d %s", code, msg)
	}
	if code, _ := call(t, http.MethodGet, first.URL, "", nil); code == http.StatusOK {
		t.Error("an upload URL read")
	}
	if info, err := s.Stat(ctx, key); err != nil || info.SHA256 != old.SHA256 {
		t.Errorf("after a PUT, before Confirm: %+v %v, want the old blob untouched", info, err)
	}
	var mismatch *MismatchError
	if _, err := s.Confirm(ctx, key, first.ID, Info{Size: want.Size + 1, SHA256: want.SHA256}); !errors.As(err, &mismatch) {
		t.Errorf("Confirm of another size than was put: %v", err)
	}
	if _, err := s.Confirm(ctx, key, first.ID, want); err == nil {
		t.Error("an upload was confirmed after a Confirm had refused it")
	}
	second := prepare(want)
	if code, _ := call(t, http.MethodPut, second.URL, body, second.Headers); code != http.StatusOK {
		t.Fatalf("PUT to an upload URL: %d", code)
	}
	if _, err := s.Confirm(ctx, key, second.ID, Info{Size: want.Size, SHA256: sha256Hex("uploaded by a forger")}); !errors.As(err, &mismatch) {
		t.Errorf("Confirm of another digest than was put: %v", err)
	}
	third := prepare(want)
	if code, _ := call(t, http.MethodPut, third.URL, body, third.Headers); code != http.StatusOK {
		t.Fatalf("PUT to an upload URL: %d", code)
	}
	if info, err := s.Confirm(ctx, key, third.ID, want); err != nil || info.Size != want.Size || info.SHA256 != want.SHA256 {
		t.Fatalf("Confirm: %+v %v", info, err)
	}
	if info, err := s.Stat(ctx, key); err != nil || info.SHA256 != want.SHA256 {
		t.Errorf("after Confirm: %+v %v", info, err)
	}
	if code, _ := call(t, http.MethodPut, third.URL, body, third.Headers); code == http.StatusOK {
		t.Error("an upload URL still works after its Confirm")
	}
	if code, _ := call(t, http.MethodPut, late.URL, lateBody, late.Headers); code != http.StatusOK {
		t.Fatalf("PUT to a late URL: %d", code)
	}
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != body {
		t.Errorf("after a late PUT the blob holds %q, want %q", got, body)
	}
	if _, err := s.Confirm(ctx, key, "../../o/x", want); err == nil {
		t.Error("Confirm of an upload id that is a path succeeded")
	}
}

// Without the digest headers Object Storage cannot check a PUT, nor say
// its sha256: Confirm reads the upload back and hashes it.
func TestOCIConfirmReadsBackAnUploadWithoutItsDigest(t *testing.T) {
	ctx := context.Background()
	f := newFakeObjectStorage(t)
	s := f.open(t)
	body := "uploaded by an agent"
	want := Info{Size: int64(len(body)), SHA256: sha256Hex(body)}
	reads := func() int { return f.count("GET", "/o/u/k/") }
	upload := func(body string, headers bool) Upload {
		up, err := s.PutURL(ctx, "k", time.Minute, want)
		if err != nil {
			t.Fatal(err)
		}
		h := up.Headers
		if !headers {
			h = nil
		}
		if code, _ := call(t, http.MethodPut, up.URL, body, h); code != http.StatusOK {
			t.Fatalf("a PUT (headers: %v): %d", headers, code)
		}
		return up
	}

	forged := upload("uploaded by a forger", false)
	before := reads()
	var mismatch *MismatchError
	if _, err := s.Confirm(ctx, "k", forged.ID, want); !errors.As(err, &mismatch) || mismatch.Got.SHA256 != sha256Hex("uploaded by a forger") {
		t.Errorf("Confirm of other bytes of the same size: %v", err)
	}
	if reads() != before+1 {
		t.Errorf("Confirm read the upload %d times, want once", reads()-before)
	}
	if _, err := s.Stat(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused upload counts: %v", err)
	}

	bare := upload(body, false)
	if info, err := s.Confirm(ctx, "k", bare.ID, want); err != nil || info.SHA256 != want.SHA256 {
		t.Errorf("Confirm of the right bytes, read back: %+v %v", info, err)
	}

	// With them, the store's own digest stands: no read back.
	checked := upload(body, true)
	before = reads()
	if info, err := s.Confirm(ctx, "k", checked.ID, want); err != nil || info.SHA256 != want.SHA256 {
		t.Errorf("Confirm with the store's digest: %+v %v", info, err)
	}
	if reads() != before {
		t.Errorf("Confirm read back an upload whose digest the store had")
	}
}

// Revoke and Sweep delete the store's own PARs, and only those asked for;
// Sweep drops an upload never confirmed, an hour after its URL expired.
func TestOCIRevokeAndSweepDeleteOnlyTheirOwnPARs(t *testing.T) {
	ctx := context.Background()
	f := newFakeObjectStorage(t)
	s := f.open(t)
	for _, k := range []string{"a", "b"} {
		if _, err := s.Put(ctx, k, strings.NewReader(k)); err != nil {
			t.Fatal(err)
		}
	}
	f.set(func(f *fakeObjectStorage) {
		f.pars["theirs"] = &fakePAR{id: "theirs", name: "someone else's", token: "t", object: "o/a", access: "ObjectRead", expires: time.Now()}
	})
	getA, err := s.GetURL(ctx, "a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var getB []string
	for range 3 { // more than a page of the fake's PAR list
		u, err := s.GetURL(ctx, "b", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		getB = append(getB, u)
	}
	want := Info{Size: 1, SHA256: sha256Hex("x")}
	upA, err := s.PutURL(ctx, "a", time.Minute, want)
	if err != nil {
		t.Fatal(err)
	}
	upB, err := s.PutURL(ctx, "b", time.Minute, want)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, http.MethodPut, upB.URL, "x", upB.Headers); code != http.StatusOK {
		t.Fatalf("PUT: %d", code)
	}

	if err := s.Revoke(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, http.MethodGet, getA, "", nil); code == http.StatusOK {
		t.Error("a revoked read URL still reads")
	}
	if code, _ := call(t, http.MethodPut, upA.URL, "x", upA.Headers); code == http.StatusOK {
		t.Error("a revoked upload URL still writes")
	}
	if code, _ := call(t, http.MethodGet, getB[2], "", nil); code != http.StatusOK {
		t.Errorf("revoking a's URLs broke b's: %d", code)
	}
	pars := func() (n int, staged bool) {
		f.set(func(f *fakeObjectStorage) { n, staged = len(f.pars), f.objects["u/b/"+upB.ID] != nil })
		return n, staged
	}
	for _, step := range []struct {
		skew   time.Duration
		pars   int
		staged bool
	}{
		{0, 5, true},                          // nothing of ours expired: b's reads, b's upload, theirs
		{2 * time.Minute, 2, true},            // b's reads go; its upload may yet be confirmed
		{time.Hour + 2*time.Minute, 1, false}, // the upload is abandoned; theirs stays
	} {
		f.set(func(f *fakeObjectStorage) { f.skew = step.skew })
		if err := s.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if n, staged := pars(); n != step.pars || staged != step.staged {
			t.Errorf("Sweep at +%v: %d PARs left, upload kept: %v; want %d, %v", step.skew, n, staged, step.pars, step.staged)
		}
	}
	f.set(func(f *fakeObjectStorage) {
		if f.pars["theirs"] == nil {
			t.Error("Sweep deleted someone else's PAR")
		}
	})
}

// Keys with characters a URL path treats specially are kept apart, and a
// URL reaches them.
func TestOCIKeepsOddKeysApart(t *testing.T) {
	ctx := context.Background()
	s := newFakeObjectStorage(t).open(t)
	odd := []string{"odd/a%2Fb c?d+e#f", "odd/a/b c?d+e#f", "odd/100%"}
	for _, k := range odd {
		if _, err := s.Put(ctx, k, strings.NewReader(k)); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	for _, k := range odd {
		rc, info, err := s.Get(ctx, k)
		if err != nil {
			t.Fatalf("Get(%q): %v", k, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != k || info.Size != int64(len(k)) {
			t.Errorf("Get(%q) = %q, %+v", k, b, info)
		}
	}
	if is, err := s.List(ctx, "odd/"); err != nil || len(is) != len(odd) {
		t.Errorf("List(odd/) = %+v, %v", is, err)
	}
	u, err := s.GetURL(ctx, odd[0], time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := call(t, http.MethodGet, u, "", nil); code != http.StatusOK || body != odd[0] {
		t.Errorf("GET %s: %d %q", u, code, body)
	}
}

// RevokeURL withdraws one URL at once (an ended attempt's), and only it:
// another URL on the same blob, handed to another build, still reads.
func TestOCIRevokeURLWithdrawsOneURL(t *testing.T) {
	ctx := context.Background()
	f := newFakeObjectStorage(t)
	s := f.open(t)
	if _, err := s.Put(ctx, "caches/r/s/deps.tar", strings.NewReader("the cache")); err != nil {
		t.Fatal(err)
	}
	ended, err := s.GetURL(ctx, "caches/r/s/deps.tar", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.GetURL(ctx, "caches/r/s/deps.tar", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeURL(ctx, ended); err != nil {
		t.Fatal(err)
	}
	if code, _ := call(t, http.MethodGet, ended, "", nil); code == http.StatusOK {
		t.Error("a revoked URL still reads")
	}
	if code, body := call(t, http.MethodGet, other, "", nil); code != http.StatusOK || body != "the cache" {
		t.Errorf("another URL on the blob: %d %q", code, body)
	}
	if err := s.RevokeURL(ctx, ended); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
}
