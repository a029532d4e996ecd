package blob

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Signer hands out short-lived URLs to one blob: what an agent is given
// instead of the store's keys. S3 signs them itself; a Dir is served by
// the coordinator (Served).
type Signer interface {
	GetURL(ctx context.Context, key string, ttl time.Duration) (string, error)
	PutURL(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// Headers an upload may carry: what the uploader says it sends, checked
// before the blob counts as stored.
const (
	HeaderSHA256 = "X-Monkeyci-Sha256"
)

// Served serves a Dir over the coordinator's HTTP port, at Prefix, to
// holders of URLs it signed: each names one blob, one method and an end
// of validity, and optionally an owner (a build's attempt) that must still
// be allowed when the URL is used.
type Served struct {
	Dir *Dir
	// Base is the coordinator's URL as agents reach it, Prefix the path
	// the handler is mounted at ("/blobs/").
	Base, Prefix string
	// Secret keys the signatures; it never leaves the coordinator.
	Secret []byte
	// Allow says whether an owner's URLs still work (nil: always).
	Allow func(owner string) bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

func (s *Served) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// GetURL signs a URL that reads the blob until ttl has passed.
func (s *Served) GetURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return s.SignFor("", http.MethodGet, key, ttl)
}

// PutURL signs a URL that stores the blob until ttl has passed.
func (s *Served) PutURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	return s.SignFor("", http.MethodPut, key, ttl)
}

// SignFor signs a URL for method on key, valid until ttl has passed and
// while owner is allowed.
func (s *Served) SignFor(owner, method, key string, ttl time.Duration) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	exp := strconv.FormatInt(s.now().Add(ttl).Unix(), 10)
	q := url.Values{"exp": {exp}, "sig": {s.sign(owner, method, key, exp)}}
	if owner != "" {
		q.Set("owner", owner)
	}
	return strings.TrimSuffix(s.Base, "/") + s.Prefix + escapeKey(key) + "?" + q.Encode(), nil
}

func (s *Served) sign(owner, method, key, exp string) string {
	m := hmac.New(sha256.New, s.Secret)
	fmt.Fprintf(m, "%s\n%s\n%s\n%s", method, key, exp, owner)
	return hex.EncodeToString(m.Sum(nil))
}

// escapeKey escapes each name of a key for a URL's path.
func escapeKey(key string) string {
	names := strings.Split(key, "/")
	for i, n := range names {
		names[i] = url.PathEscape(n)
	}
	return strings.Join(names, "/")
}

// ServeHTTP streams a blob to a GET and from a PUT whose URL it signed.
// An upload that says its digest (HeaderSHA256) or length and does not
// match is refused, and nothing of it is stored.
func (s *Served) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key, ok := strings.CutPrefix(r.URL.Path, s.Prefix)
	q := r.URL.Query()
	exp, owner, sig := q.Get("exp"), q.Get("owner"), q.Get("sig")
	until, err := strconv.ParseInt(exp, 10, 64)
	switch {
	case !ok || CheckKey(key) != nil || err != nil:
		http.Error(w, "not a blob URL", http.StatusNotFound)
		return
	case !hmac.Equal([]byte(sig), []byte(s.sign(owner, r.Method, key, exp))):
		http.Error(w, "this URL is not signed for that", http.StatusForbidden)
		return
	case s.now().Unix() > until:
		http.Error(w, "this URL has expired", http.StatusForbidden)
		return
	case owner != "" && s.Allow != nil && !s.Allow(owner):
		http.Error(w, "this URL's attempt has ended", http.StatusForbidden)
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.get(w, r, key)
	case http.MethodPut:
		s.put(w, r, key)
	default:
		http.Error(w, "GET or PUT", http.StatusMethodNotAllowed)
	}
}

func (s *Served) get(w http.ResponseWriter, r *http.Request, key string) {
	rc, info, err := s.Dir.Get(r.Context(), key)
	if errors.Is(err, ErrNotFound) {
		http.Error(w, "no such blob", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "reading the blob failed", http.StatusInternalServerError)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	if info.SHA256 != "" {
		w.Header().Set(HeaderSHA256, info.SHA256)
	}
	_, _ = io.Copy(w, rc)
}

func (s *Served) put(w http.ResponseWriter, r *http.Request, key string) {
	want := Info{Size: r.ContentLength, SHA256: strings.ToLower(r.Header.Get(HeaderSHA256))}
	info, err := s.Dir.put(r.Context(), key, r.Body, want)
	var mismatch *MismatchError
	switch {
	case errors.As(err, &mismatch):
		http.Error(w, mismatch.Error(), http.StatusBadRequest)
		return
	case err != nil:
		http.Error(w, "storing the blob failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set(HeaderSHA256, info.SHA256)
	w.WriteHeader(http.StatusCreated)
}

// MismatchError: an upload was not what its sender said it was.
type MismatchError struct {
	Key       string
	Want, Got Info
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("blob %s: got %d bytes with sha256 %s, the sender said %d bytes with sha256 %s",
		e.Key, e.Got.Size, e.Got.SHA256, e.Want.Size, e.Want.SHA256)
}
