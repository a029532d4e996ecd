package blob

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a Store in a bucket of any S3-compatible store (MinIO, Ceph,
// versitygw, AWS, OCI's S3 compatibility endpoint), laid out as Dir is: a
// blob under o/KEY, its digest under s/KEY. A blob counts once its digest
// is there: an upload cut short, or not yet confirmed, has none. Puts of unknown length go up
// as multipart uploads, a part at a time: a blob is never in memory whole.
type S3 struct {
	client *minio.Client
	bucket string
}

// S3Config says where a bucket is and how to reach it.
type S3Config struct {
	Endpoint string // host:port
	Secure   bool   // https
	Region   string
	Bucket   string
	// AccessKey and SecretKey; empty: from the environment
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the instance's role.
	AccessKey, SecretKey string
}

// ParseS3URL reads s3://BUCKET?endpoint=HOST:PORT[&region=R][&insecure=1]:
// the coordinator's --blobs.
func ParseS3URL(raw string) (S3Config, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" || strings.Trim(u.Path, "/") != "" {
		return S3Config{}, fmt.Errorf("blob store URL %q: expected s3://BUCKET?endpoint=HOST:PORT", raw)
	}
	q := u.Query()
	c := S3Config{Bucket: u.Host, Endpoint: q.Get("endpoint"), Region: q.Get("region"), Secure: q.Get("insecure") == ""}
	if c.Endpoint == "" {
		return S3Config{}, fmt.Errorf("blob store URL %q: no endpoint=HOST:PORT", raw)
	}
	return c, nil
}

// OpenS3 reaches the bucket, which must exist.
func OpenS3(ctx context.Context, c S3Config) (*S3, error) {
	creds := credentials.NewChainCredentials([]credentials.Provider{&credentials.EnvAWS{}, &credentials.IAM{}})
	if c.AccessKey != "" {
		creds = credentials.NewStaticV4(c.AccessKey, c.SecretKey, "")
	}
	client, err := minio.New(c.Endpoint, &minio.Options{Creds: creds, Secure: c.Secure, Region: c.Region})
	if err != nil {
		return nil, fmt.Errorf("blob store s3://%s: %w", c.Bucket, err)
	}
	ok, err := client.BucketExists(ctx, c.Bucket)
	switch {
	case err != nil:
		return nil, fmt.Errorf("blob store s3://%s at %s: %w", c.Bucket, c.Endpoint, err)
	case !ok:
		return nil, fmt.Errorf("blob store s3://%s at %s: no such bucket: make it first", c.Bucket, c.Endpoint)
	}
	return &S3{client: client, bucket: c.Bucket}, nil
}

// partSize is the size of a multipart upload's parts: what a Put holds in
// memory at once.
const partSize = 16 << 20

// Put uploads r, hashing it on the way, then writes the digest.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	// The old digest first: it must never stand for the new bytes.
	if err := s.client.RemoveObject(ctx, s.bucket, "s/"+key, minio.RemoveObjectOptions{}); err != nil && !isNoSuchKey(err) {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	h := newDigests()
	up, err := s.client.PutObject(ctx, s.bucket, "o/"+key, io.TeeReader(r, h), -1,
		minio.PutObjectOptions{PartSize: partSize, ContentType: "application/octet-stream"})
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	sum, crc := h.sums()
	text := sumText(Info{SHA256: sum, CRC32C: crc})
	if _, err := s.client.PutObject(ctx, s.bucket, "s/"+key, strings.NewReader(text), int64(len(text)), minio.PutObjectOptions{}); err != nil {
		return Info{}, fmt.Errorf("put %s: its digest: %w", key, err)
	}
	return Info{Key: key, Size: up.Size, SHA256: sum, CRC32C: crc, Modified: up.LastModified}, nil
}

// Get opens the blob for reading.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, "o/"+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, Info{}, s.wrap(key, err)
	}
	return obj, info, nil
}

// Stat reads the blob's size and its digest.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	st, err := s.client.StatObject(ctx, s.bucket, "o/"+key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.wrap(key, err)
	}
	sum, crc := parseSum(s.sum(ctx, key))
	if sum == "" { // put but not confirmed, or cut short: not saved
		return Info{}, fmt.Errorf("blob %s: %w", key, ErrNotFound)
	}
	return Info{Key: key, Size: st.Size, SHA256: sum, CRC32C: crc, Modified: st.LastModified}, nil
}

// sum reads a blob's digest, "" when there is none.
func (s *S3) sum(ctx context.Context, key string) string {
	obj, err := s.client.GetObject(ctx, s.bucket, "s/"+key, minio.GetObjectOptions{})
	if err != nil {
		return ""
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, 128))
	if err != nil {
		return ""
	}
	return string(b)
}

// List lists the blobs under prefix.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	var out []Info
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: "o/" + prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list blobs %q: %w", prefix, o.Err)
		}
		key := strings.TrimPrefix(o.Key, "o/")
		if sum, crc := parseSum(s.sum(ctx, key)); sum != "" {
			out = append(out, Info{Key: key, Size: o.Size, SHA256: sum, CRC32C: crc, Modified: o.LastModified})
		}
	}
	return out, nil
}

// Delete removes the blob and its digest.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	for _, k := range []string{"o/" + key, "s/" + key} {
		if err := s.client.RemoveObject(ctx, s.bucket, k, minio.RemoveObjectOptions{}); err != nil && !isNoSuchKey(err) {
			return fmt.Errorf("delete blob %s: %w", key, err)
		}
	}
	return nil
}

// GetURL is a URL that reads the blob without credentials until ttl has
// passed.
func (s *S3) GetURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	u, err := s.client.PresignedGetObject(ctx, s.bucket, "o/"+key, ttl, nil)
	if err != nil {
		return "", fmt.Errorf("a URL to get %s: %w", key, err)
	}
	return u.String(), nil
}

// PutURL is a URL that stores an upload of the blob, with one PUT of at
// most 5 GB, under u/KEY/UPLOAD: a URL used late, or twice at once, never
// touches the blob itself. Its sha256 is signed into the URL, so the store
// refuses other bytes (BadDigest).
func (s *S3) PutURL(ctx context.Context, key string, ttl time.Duration, want Info) (Upload, error) {
	if err := CheckKey(key); err != nil {
		return Upload{}, err
	}
	if ttl > maxUploadTTL {
		return Upload{}, fmt.Errorf("a URL to put %s: %s is longer than an upload's URL may live (%s)", key, ttl, maxUploadTTL)
	}
	raw, err := hex.DecodeString(want.SHA256)
	if err != nil || len(raw) != sha256.Size {
		return Upload{}, fmt.Errorf("a URL to put %s: %q is not a sha256", key, want.SHA256)
	}
	up := Upload{ID: newUploadID(), Headers: map[string]string{"X-Amz-Checksum-Sha256": base64.StdEncoding.EncodeToString(raw)}}
	h := http.Header{}
	for k, v := range up.Headers {
		h.Set(k, v)
	}
	u, err := s.client.PresignHeader(ctx, http.MethodPut, s.bucket, uploadKey(key, up.ID), ttl, nil, h)
	if err != nil {
		return Upload{}, fmt.Errorf("a URL to put %s: %w", key, err)
	}
	up.URL = u.String()
	return up, nil
}

func uploadKey(key, id string) string { return "u/" + key + "/" + id }

// maxUploadTTL bounds an upload URL's life: Sweep counts on it.
const maxUploadTTL = 24 * time.Hour

// Confirm checks the size of an upload (the store checked its digest),
// copies it to the blob within the store, and records the digest: from
// then on the blob counts. The old digest goes first, so that it never
// stands beside the new bytes.
func (s *S3) Confirm(ctx context.Context, key, upload string, want Info) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	if !uploadID.MatchString(upload) {
		return Info{}, fmt.Errorf("confirm %s: %q is not an upload's id", key, upload)
	}
	staged := uploadKey(key, upload)
	st, err := s.client.StatObject(ctx, s.bucket, staged, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s.wrap(key, err)
	}
	defer s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, staged, minio.RemoveObjectOptions{})
	if st.Size != want.Size {
		return Info{}, &MismatchError{Key: key, Want: want, Got: Info{Key: key, Size: st.Size, SHA256: want.SHA256}}
	}
	if err := s.client.RemoveObject(ctx, s.bucket, "s/"+key, minio.RemoveObjectOptions{}); err != nil && !isNoSuchKey(err) {
		return Info{}, fmt.Errorf("confirm %s: %w", key, err)
	}
	up, err := s.client.ComposeObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: "o/" + key},
		minio.CopySrcOptions{Bucket: s.bucket, Object: staged})
	if err != nil {
		return Info{}, fmt.Errorf("confirm %s: %w", key, err)
	}
	text := sumText(want)
	if _, err := s.client.PutObject(ctx, s.bucket, "s/"+key, strings.NewReader(text), int64(len(text)), minio.PutObjectOptions{}); err != nil {
		return Info{}, fmt.Errorf("confirm %s: its digest: %w", key, err)
	}
	return Info{Key: key, Size: want.Size, SHA256: want.SHA256, CRC32C: want.CRC32C, Modified: up.LastModified}, nil
}

var _ Signer = (*S3)(nil)

func (s *S3) wrap(key string, err error) error {
	if isNoSuchKey(err) {
		return fmt.Errorf("blob %s: %w", key, ErrNotFound)
	}
	return fmt.Errorf("blob %s: %w", key, err)
}

func isNoSuchKey(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == "NoSuchKey" || r.StatusCode == 404
}

// Sweep deletes the uploads never confirmed, stagedGrace after their URL
// expired at the latest (an upload's URL lives at most a day here).
func (s *S3) Sweep(ctx context.Context) error {
	cutoff := time.Now().Add(-maxUploadTTL - stagedGrace)
	var errs []error
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: "u/", Recursive: true}) {
		if o.Err != nil {
			return fmt.Errorf("sweep uploads: %w", o.Err)
		}
		if o.LastModified.Before(cutoff) {
			if err := s.client.RemoveObject(ctx, s.bucket, o.Key, minio.RemoveObjectOptions{}); err != nil && !isNoSuchKey(err) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sweep uploads: %w", err)
	}
	return nil
}
