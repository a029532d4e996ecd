package blob

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Signer is a store whose blobs can be read and written without its keys,
// through short-lived URLs: what an agent is handed instead of the
// bucket's credentials, so bytes go straight between agent and bucket.
type Signer interface {
	// GetURL reads the blob until ttl has passed.
	GetURL(ctx context.Context, key string, ttl time.Duration) (string, error)
	// PutURL stores a blob of want's size and digest until ttl has passed;
	// the PUT must carry the headers returned (they are signed into the
	// URL). What it stores does not count (Stat, Get and List do not see
	// it) until Confirm has checked it.
	PutURL(ctx context.Context, key string, ttl time.Duration, want Info) (url string, headers map[string]string, err error)
	// Confirm checks that what was PUT under key is want, and only then
	// makes it count.
	Confirm(ctx context.Context, key string, want Info) (Info, error)
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
	if info.Size != want.Size || info.SHA256 != want.SHA256 {
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
