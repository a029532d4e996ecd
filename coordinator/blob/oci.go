package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/objectstorage"

	"github.com/monkeyci/monkeyci/internal/ctxio"
	"github.com/monkeyci/monkeyci/internal/ocicred"
)

// OCI is a Store in an OCI Object Storage bucket, reached through its
// native API (not the S3 compatibility one, which needs customer secret
// keys where this takes the API key or instance principal the pool already
// uses). It is laid out as S3 is: a blob under o/KEY, its digest under
// s/KEY, and a blob counts once its digest is there. Large Puts go up as
// multipart uploads, a part at a time.
type OCI struct {
	client    objectstorage.ObjectStorageClient
	namespace string
	bucket    string
	now       func() time.Time // when PARs expire; a test's clock

	// issued is the PAR of each URL handed out, by URL, for RevokeURL
	// (in memory: after a restart they expire, or Sweep takes them).
	mu     sync.Mutex
	issued map[string]issuedPAR
}

// issuedPAR is a PAR behind a URL handed out, and when it expires.
type issuedPAR struct {
	id      string
	expires time.Time
}

// OCIConfig says which bucket to use and how to reach it.
type OCIConfig struct {
	Namespace, Bucket string
	// Region replaces the credentials' region.
	Region string
	// Credentials, first match wins, as for the OCI pool:
	// ConfigurationProvider, then InstancePrincipal, then
	// ConfigFile/Profile (empty: ~/.oci/config and its DEFAULT profile).
	ConfigurationProvider common.ConfigurationProvider
	InstancePrincipal     bool
	ConfigFile            string
	Profile               string
	// Endpoint replaces the region's, as scheme://host[:port]: a private
	// endpoint, or a test server.
	Endpoint string
}

// ParseOCIURL reads oci://NAMESPACE/BUCKET[?region=R][&config=FILE]
// [&profile=P][&principal=instance][&endpoint=URL]: the coordinator's
// --blobs. An unknown option is refused, so a misspelt profile= does not
// quietly fall back to the default one.
func ParseOCIURL(raw string) (OCIConfig, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "oci" || u.Host == "" {
		return OCIConfig{}, fmt.Errorf("blob store URL %q: expected oci://NAMESPACE/BUCKET", raw)
	}
	bucket := strings.Trim(u.Path, "/")
	if bucket == "" || strings.Contains(bucket, "/") {
		return OCIConfig{}, fmt.Errorf("blob store URL %q: expected oci://NAMESPACE/BUCKET", raw)
	}
	q := u.Query()
	c := OCIConfig{Namespace: u.Host, Bucket: bucket, Region: q.Get("region"), ConfigFile: q.Get("config"),
		Profile: q.Get("profile"), Endpoint: q.Get("endpoint")}
	for k := range q {
		switch k {
		case "region", "config", "profile", "endpoint":
		case "principal":
			if q.Get(k) != "instance" {
				return OCIConfig{}, fmt.Errorf("blob store URL %q: principal=%q: only principal=instance is known", raw, q.Get(k))
			}
			c.InstancePrincipal = true
		default:
			return OCIConfig{}, fmt.Errorf("blob store URL %q: unknown option %q (known: region, config, profile, principal, endpoint)", raw, k)
		}
	}
	return c, nil
}

// OpenOCI reaches the bucket, which must exist.
func OpenOCI(ctx context.Context, c OCIConfig) (*OCI, error) {
	name := "oci://" + c.Namespace + "/" + c.Bucket
	creds, err := ocicred.Source{Provider: c.ConfigurationProvider, InstancePrincipal: c.InstancePrincipal,
		File: c.ConfigFile, Profile: c.Profile}.ConfigurationProvider()
	if err != nil {
		return nil, fmt.Errorf("blob store %s: %w", name, err)
	}
	client, err := objectstorage.NewObjectStorageClientWithConfigurationProvider(creds)
	if err != nil {
		return nil, fmt.Errorf("blob store %s: %w", name, err)
	}
	// The constructor sets Host from the credentials' region, so the
	// overrides come after.
	if c.Region != "" {
		client.SetRegion(c.Region)
	}
	if c.Endpoint != "" {
		client.Host = c.Endpoint
	}
	// No SDK retries, whatever OCI_SDK_DEFAULT_RETRY_ENABLED says: a
	// failed Put is the caller's to retry, with a reader it can rewind.
	noRetry := common.NoRetryPolicy()
	client.Configuration.RetryPolicy = &noRetry
	client.HTTPClient = callerDispatcher{client.HTTPClient}
	s := &OCI{client: client, namespace: c.Namespace, bucket: c.Bucket, now: time.Now}
	_, err = client.HeadBucket(ctx, objectstorage.HeadBucketRequest{NamespaceName: &s.namespace, BucketName: &s.bucket})
	switch {
	case hasStatus(err, http.StatusNotFound):
		return nil, fmt.Errorf("blob store %s at %s: no such bucket (or no access to it): make it first", name, client.Host)
	case err != nil:
		return nil, fmt.Errorf("blob store %s at %s: %w", name, client.Host, short(err))
	}
	return s, nil
}

// Put uploads r, hashing it on the way, then writes the digest. A blob of
// up to partSize bytes goes up in one request, a larger one in parts.
func (s *OCI) Put(ctx context.Context, key string, r io.Reader) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	// The old digest first: it must never stand for the new bytes.
	if err := s.deleteObject(ctx, "s/"+key); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	h := newDigests()
	src := io.TeeReader(ctxio.Reader(ctx, r), h)
	buf := make([]byte, partSize)
	n, err := io.ReadFull(src, buf)
	var size int64
	var modified time.Time
	switch err {
	case io.EOF, io.ErrUnexpectedEOF: // all of it is in buf
		size = int64(n)
		modified, err = s.putObject(ctx, "o/"+key, buf[:n])
	case nil:
		size, modified, err = s.putParts(ctx, "o/"+key, buf, src)
	}
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", key, err)
	}
	sum, crc := h.sums()
	if _, err := s.putObject(ctx, "s/"+key, []byte(sumText(Info{SHA256: sum, CRC32C: crc}))); err != nil {
		return Info{}, fmt.Errorf("put %s: its digest: %w", key, err)
	}
	return Info{Key: key, Size: size, SHA256: sum, CRC32C: crc, Modified: modified}, nil
}

// putObject stores data in one request, with its sha256 for the store to
// check on arrival.
func (s *OCI) putObject(ctx context.Context, name string, data []byte) (time.Time, error) {
	n := int64(len(data))
	resp, err := s.client.PutObject(sdkCtx(ctx), objectstorage.PutObjectRequest{
		NamespaceName: &s.namespace, BucketName: &s.bucket, ObjectName: &name,
		ContentLength: &n, PutObjectBody: io.NopCloser(bytes.NewReader(data)),
		ContentType:          common.String("application/octet-stream"),
		OpcChecksumAlgorithm: objectstorage.PutObjectOpcChecksumAlgorithmSha256,
		OpcContentSha256:     common.String(sha256Base64(data)),
	})
	if err != nil {
		return time.Time{}, short(err)
	}
	return sdkTime(resp.LastModified), nil
}

// putParts uploads first, then the rest of src, as the parts of one
// multipart upload, reusing first's buffer for each: a Put holds one part
// in memory. An upload that fails is aborted, so no parts linger.
func (s *OCI) putParts(ctx context.Context, name string, first []byte, src io.Reader) (int64, time.Time, error) {
	up, err := s.client.CreateMultipartUpload(sdkCtx(ctx), objectstorage.CreateMultipartUploadRequest{
		NamespaceName: &s.namespace, BucketName: &s.bucket,
		CreateMultipartUploadDetails: objectstorage.CreateMultipartUploadDetails{
			Object: &name, ContentType: common.String("application/octet-stream"),
		},
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("starting a multipart upload: %w", short(err))
	}
	id := up.UploadId
	fail := func(err error) (int64, time.Time, error) {
		// Its own context: a canceled Put must still abort its upload.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, aerr := s.client.AbortMultipartUpload(sdkCtx(actx), objectstorage.AbortMultipartUploadRequest{
			NamespaceName: &s.namespace, BucketName: &s.bucket, ObjectName: &name, UploadId: id,
		})
		if aerr != nil {
			return 0, time.Time{}, errors.Join(err, fmt.Errorf("aborting upload %s: %w", *id, short(aerr)))
		}
		return 0, time.Time{}, err
	}
	var parts []objectstorage.CommitMultipartUploadPartDetails
	var size int64
	buf, n := first, len(first)
	for num := 1; n > 0; num++ {
		etag, err := s.uploadPart(ctx, name, *id, num, buf[:n])
		if err != nil {
			return fail(fmt.Errorf("part %d: %w", num, err))
		}
		parts = append(parts, objectstorage.CommitMultipartUploadPartDetails{PartNum: common.Int(num), Etag: &etag})
		size += int64(n)
		n, err = io.ReadFull(src, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return fail(err)
		}
	}
	done, err := s.client.CommitMultipartUpload(sdkCtx(ctx), objectstorage.CommitMultipartUploadRequest{
		NamespaceName: &s.namespace, BucketName: &s.bucket, ObjectName: &name, UploadId: id,
		CommitMultipartUploadDetails: objectstorage.CommitMultipartUploadDetails{PartsToCommit: parts},
	})
	if err != nil {
		return fail(fmt.Errorf("committing the upload: %w", short(err)))
	}
	return size, sdkTime(done.LastModified), nil
}

func (s *OCI) uploadPart(ctx context.Context, name, id string, num int, data []byte) (string, error) {
	n := int64(len(data))
	resp, err := s.client.UploadPart(sdkCtx(ctx), objectstorage.UploadPartRequest{
		NamespaceName: &s.namespace, BucketName: &s.bucket, ObjectName: &name,
		UploadId: &id, UploadPartNum: &num,
		ContentLength: &n, UploadPartBody: io.NopCloser(bytes.NewReader(data)),
		OpcChecksumAlgorithm: objectstorage.UploadPartOpcChecksumAlgorithmSha256,
		OpcContentSha256:     common.String(sha256Base64(data)),
	})
	if err != nil {
		return "", short(err)
	}
	if resp.ETag == nil {
		return "", errors.New("the store sent no ETag for the part")
	}
	return *resp.ETag, nil
}

// Get opens the blob for reading.
func (s *OCI) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	name := "o/" + key
	resp, err := s.client.GetObject(sdkCtx(ctx), objectstorage.GetObjectRequest{NamespaceName: &s.namespace, BucketName: &s.bucket, ObjectName: &name})
	if err != nil {
		return nil, Info{}, s.wrap(key, err)
	}
	return resp.Content, info, nil
}

// Stat reads the blob's size and its digest.
func (s *OCI) Stat(ctx context.Context, key string) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	name := "o/" + key
	head, err := s.client.HeadObject(sdkCtx(ctx), objectstorage.HeadObjectRequest{NamespaceName: &s.namespace, BucketName: &s.bucket, ObjectName: &name})
	if err != nil {
		return Info{}, s.wrap(key, err)
	}
	text, err := s.sum(ctx, key)
	sum, crc := parseSum(text)
	switch {
	case err != nil:
		return Info{}, err
	case sum == "": // put but not confirmed, or cut short: not saved
		return Info{}, fmt.Errorf("blob %s: %w", key, ErrNotFound)
	}
	return Info{Key: key, Size: int64Of(head.ContentLength), SHA256: sum, CRC32C: crc, Modified: sdkTime(head.LastModified)}, nil
}

// sum reads a blob's digest, "" when there is none.
func (s *OCI) sum(ctx context.Context, key string) (string, error) {
	name := "s/" + key
	resp, err := s.client.GetObject(sdkCtx(ctx), objectstorage.GetObjectRequest{NamespaceName: &s.namespace, BucketName: &s.bucket, ObjectName: &name})
	if hasStatus(err, http.StatusNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("blob %s: its digest: %w", key, short(err))
	}
	defer resp.Content.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Content, 128))
	if err != nil {
		return "", fmt.Errorf("blob %s: its digest: %w", key, err)
	}
	return string(b), nil
}

// List lists the blobs under prefix, a page of the bucket at a time.
func (s *OCI) List(ctx context.Context, prefix string) ([]Info, error) {
	var out []Info
	var start *string
	for {
		resp, err := s.client.ListObjects(sdkCtx(ctx), objectstorage.ListObjectsRequest{
			NamespaceName: &s.namespace, BucketName: &s.bucket,
			Prefix: common.String("o/" + prefix), Start: start, Fields: common.String("name,size,timeModified"),
		})
		if err != nil {
			return nil, fmt.Errorf("list blobs %q: %w", prefix, short(err))
		}
		for _, o := range resp.Objects {
			key := strings.TrimPrefix(*o.Name, "o/")
			text, err := s.sum(ctx, key)
			if err != nil {
				return nil, fmt.Errorf("list blobs %q: %w", prefix, err)
			}
			if sum, crc := parseSum(text); sum != "" {
				out = append(out, Info{Key: key, Size: int64Of(o.Size), SHA256: sum, CRC32C: crc, Modified: sdkTime(o.TimeModified)})
			}
		}
		if resp.NextStartWith == nil {
			return out, nil
		}
		start = resp.NextStartWith
	}
}

// Delete removes the blob's digest, then the blob: it stops counting at
// once even if the second call fails.
func (s *OCI) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	for _, name := range []string{"s/" + key, "o/" + key} {
		if err := s.deleteObject(ctx, name); err != nil {
			return fmt.Errorf("delete blob %s: %w", key, err)
		}
	}
	return nil
}

// deleteObject removes an object; removing what is gone is not an error.
func (s *OCI) deleteObject(ctx context.Context, name string) error {
	_, err := s.client.DeleteObject(sdkCtx(ctx), objectstorage.DeleteObjectRequest{NamespaceName: &s.namespace, BucketName: &s.bucket, ObjectName: &name})
	if err != nil && !hasStatus(err, http.StatusNotFound) {
		return short(err)
	}
	return nil
}

func (s *OCI) wrap(key string, err error) error {
	if hasStatus(err, http.StatusNotFound) {
		return fmt.Errorf("blob %s: %w", key, ErrNotFound)
	}
	return fmt.Errorf("blob %s: %w", key, short(err))
}

// ociError is an OCI service error on one line. The SDK's own message runs
// to ten lines of links and tips; the original stays reachable through
// Unwrap.
type ociError struct {
	err error
	se  common.ServiceError
}

func (e ociError) Error() string {
	return fmt.Sprintf("%d %s: %s (opc-request-id %s)",
		e.se.GetHTTPStatusCode(), e.se.GetCode(), e.se.GetMessage(), e.se.GetOpcRequestID())
}

func (e ociError) Unwrap() error { return e.err }

// short shortens an SDK service error; any other error passes unchanged.
func short(err error) error {
	var se common.ServiceError
	if errors.As(err, &se) {
		return ociError{err: err, se: se}
	}
	return err
}

// hasStatus tells whether OCI answered err with the HTTP status code.
func hasStatus(err error, code int) bool {
	var se common.ServiceError
	return errors.As(err, &se) && se.GetHTTPStatusCode() == code
}

func sha256Base64(data []byte) string {
	sum := sha256.Sum256(data)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func sdkTime(t *common.SDKTime) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

func int64Of(n *int64) int64 {
	if n == nil {
		return 0
	}
	return *n
}
