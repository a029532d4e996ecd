package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"time"
)

// Signer is a store whose blobs can be read and written without its keys,
// through short-lived URLs: what an agent is handed instead of the
// bucket's credentials, so bytes go straight between agent and bucket.
type Signer interface {
	// GetURL reads the blob until ttl has passed.
	GetURL(ctx context.Context, key string, ttl time.Duration) (string, error)
	// PutURL makes an upload of a blob of want's size and digest, to a URL
	// that works until ttl has passed. What it stores goes under key only
	// when Confirm is told the upload: until then, and for an upload
	// never confirmed (its URL used late, say), the key is untouched.
	PutURL(ctx context.Context, key string, ttl time.Duration, want Info) (Upload, error)
	// Confirm checks that the upload is want and puts it under key.
	Confirm(ctx context.Context, key, upload string, want Info) (Info, error)
}

// Upload is where to PUT a blob: its URL, the headers the PUT must carry
// (signed into the URL), and the upload's id, for Confirm.
type Upload struct {
	URL     string
	Headers map[string]string
	ID      string
}

// uploadID is what an upload's id looks like: it becomes part of a key.
var uploadID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func newUploadID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PutVerified stores what r yields under key only if it is want (its Size
// and SHA256): an upload that is not what its sender said is refused with
// a MismatchError, and nothing of it counts as stored.
func PutVerified(ctx context.Context, s Store, key string, r io.Reader, want Info) (Info, error) {
	if d, ok := s.(*Dir); ok {
		return d.put(ctx, key, r, want)
	}
	// Other stores see the bytes go by; a mismatch is deleted again.
	info, err := s.Put(ctx, key, r)
	if err != nil {
		return Info{}, err
	}
	if info.Size != want.Size || info.SHA256 != want.SHA256 || want.CRC32C != "" && info.CRC32C != want.CRC32C {
		_ = s.Delete(context.WithoutCancel(ctx), key)
		return Info{}, &MismatchError{Key: key, Want: want, Got: info}
	}
	return info, nil
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
