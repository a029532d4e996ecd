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
	"strings"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/objectstorage"
)

// The OCI store hands out its URLs as pre-authenticated requests (PARs),
// each scoped to one object and one way (read or write). Unlike an S3
// presigned URL, a PAR is a thing in the bucket: it can be revoked, and it
// lives until deleted, so the store deletes those it made when they have
// done their work (Confirm), when asked (Revoke) and once expired (Sweep).

var _ Signer = (*OCI)(nil)

// parName names the PARs this store makes: it deletes only these, never
// a PAR someone else made on the bucket.
const parName = "monkeyci-blob"

// GetURL is a URL that reads the blob, and only it, until ttl has passed.
func (s *OCI) GetURL(ctx context.Context, key string, ttl time.Duration) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	u, err := s.createPAR(ctx, "o/"+key, objectstorage.CreatePreauthenticatedRequestDetailsAccessTypeObjectread, ttl)
	if err != nil {
		return "", fmt.Errorf("a URL to get %s: %w", key, err)
	}
	return u, nil
}

// PutURL is a URL that writes an upload of the blob, under u/KEY/UPLOAD
// and nowhere else, with one PUT (of at most 50 GiB) until ttl has
// passed: a URL used late, or twice at once, never touches the blob. A
// PAR cannot bind a digest as an S3 signature does, so the headers
// returned only ask Object Storage to check the bytes against want's
// sha256 as they arrive (it refuses others) and to keep that sha256;
// Confirm does not rely on the agent having sent them.
func (s *OCI) PutURL(ctx context.Context, key string, ttl time.Duration, want Info) (Upload, error) {
	if err := CheckKey(key); err != nil {
		return Upload{}, err
	}
	raw, err := hex.DecodeString(want.SHA256)
	if err != nil || len(raw) != sha256.Size {
		return Upload{}, fmt.Errorf("a URL to put %s: %q is not a sha256", key, want.SHA256)
	}
	up := Upload{ID: newUploadID(), Headers: map[string]string{
		"opc-checksum-algorithm": "SHA256",
		"opc-content-sha256":     base64.StdEncoding.EncodeToString(raw),
	}}
	up.URL, err = s.createPAR(ctx, uploadKey(key, up.ID), objectstorage.CreatePreauthenticatedRequestDetailsAccessTypeObjectwrite, ttl)
	if err != nil {
		return Upload{}, fmt.Errorf("a URL to put %s: %w", key, err)
	}
	return up, nil
}

// createPAR makes a PAR on one object; its URL is the region's endpoint
// followed by the PAR's access URI.
func (s *OCI) createPAR(ctx context.Context, name string, access objectstorage.CreatePreauthenticatedRequestDetailsAccessTypeEnum, ttl time.Duration) (string, error) {
	resp, err := s.client.CreatePreauthenticatedRequest(sdkCtx(ctx), objectstorage.CreatePreauthenticatedRequestRequest{
		NamespaceName: &s.namespace, BucketName: &s.bucket,
		CreatePreauthenticatedRequestDetails: objectstorage.CreatePreauthenticatedRequestDetails{
			Name: common.String(parName), AccessType: access, ObjectName: &name,
			TimeExpires: &common.SDKTime{Time: s.now().Add(ttl)},
		},
	})
	if err != nil {
		return "", short(err)
	}
	if resp.AccessUri == nil || !strings.HasPrefix(*resp.AccessUri, "/") {
		return "", fmt.Errorf("the store sent no access URI for PAR %v", resp.Id)
	}
	host := strings.TrimSuffix(s.client.Host, "/")
	if !strings.Contains(host, "://") { // the SDK's own default
		host = "https://" + host
	}
	url := host + *resp.AccessUri
	if resp.Id != nil {
		s.mu.Lock()
		if s.issued == nil {
			s.issued = map[string]issuedPAR{}
		}
		s.issued[url] = issuedPAR{id: *resp.Id, expires: s.now().Add(ttl)}
		s.mu.Unlock()
	}
	return url, nil
}

// RevokeURL withdraws one URL this store handed out, before its time is
// over: the attempt it was handed to has ended. Others on the same blob
// (another build's) go on working.
func (s *OCI) RevokeURL(ctx context.Context, url string) error {
	s.mu.Lock()
	par, ok := s.issued[url]
	delete(s.issued, url)
	s.mu.Unlock()
	if !ok {
		return nil // not ours, or revoked already
	}
	return s.deletePAR(ctx, par.id)
}

// Confirm checks an upload and renames it to the blob within the bucket,
// then records the digest: from then on the blob counts. The upload's URL
// goes first, so nothing changes the bytes once checked, and the rename
// takes only the bytes checked (their ETag). An upload checked, whether
// it matched or not, is spent.
func (s *OCI) Confirm(ctx context.Context, key, upload string, want Info) (Info, error) {
	if err := CheckKey(key); err != nil {
		return Info{}, err
	}
	if !uploadID.MatchString(upload) {
		return Info{}, fmt.Errorf("confirm %s: %q is not an upload's id", key, upload)
	}
	staged := uploadKey(key, upload)
	if err := s.deletePARs(ctx, staged, func(p parSummary) bool { return *p.ObjectName == staged }); err != nil {
		return Info{}, fmt.Errorf("confirm %s: its upload URL: %w", key, err)
	}
	head, err := s.client.HeadObject(sdkCtx(ctx), objectstorage.HeadObjectRequest{NamespaceName: &s.namespace, BucketName: &s.bucket, ObjectName: &staged})
	if err != nil {
		return Info{}, s.wrap(key, err)
	}
	defer s.deleteObject(context.WithoutCancel(ctx), staged) // gone once renamed
	got := Info{Key: key, Size: int64Of(head.ContentLength), Modified: sdkTime(head.LastModified)}
	if got.Size != want.Size {
		return Info{}, &MismatchError{Key: key, Want: want, Got: got}
	}
	if got.SHA256, err = s.digestOf(ctx, staged, head); err != nil {
		return Info{}, fmt.Errorf("confirm %s: %w", key, err)
	}
	if got.SHA256 != want.SHA256 {
		return Info{}, &MismatchError{Key: key, Want: want, Got: got}
	}
	// The old digest first: it must never stand beside the new bytes.
	if err := s.deleteObject(ctx, "s/"+key); err != nil {
		return Info{}, fmt.Errorf("confirm %s: %w", key, err)
	}
	_, err = s.client.RenameObject(sdkCtx(ctx), objectstorage.RenameObjectRequest{
		NamespaceName: &s.namespace, BucketName: &s.bucket,
		RenameObjectDetails: objectstorage.RenameObjectDetails{
			SourceName: &staged, NewName: common.String("o/" + key), SrcObjIfMatchETag: head.ETag,
		},
	})
	if err != nil {
		return Info{}, fmt.Errorf("confirm %s: %w", key, short(err))
	}
	got.CRC32C = want.CRC32C // the uploader's: the bytes it checks were checked by their sha256
	if _, err := s.putObject(ctx, "s/"+key, []byte(sumText(got))); err != nil {
		return Info{}, fmt.Errorf("confirm %s: its digest: %w", key, err)
	}
	return got, nil
}

// digestOf is the hex sha256 of the object head describes. When the PUT
// carried PutURL's headers, Object Storage computed it as the bytes came
// in and HEAD says it; when the agent left them out, HEAD has none and
// the object is read back through the API and hashed, streaming.
func (s *OCI) digestOf(ctx context.Context, name string, head objectstorage.HeadObjectResponse) (string, error) {
	if head.OpcContentSha256 != nil {
		raw, err := base64.StdEncoding.DecodeString(*head.OpcContentSha256)
		if err == nil && len(raw) == sha256.Size {
			return hex.EncodeToString(raw), nil
		}
	}
	// If-Match: the bytes hashed are those whose size was checked.
	resp, err := s.client.GetObject(sdkCtx(ctx), objectstorage.GetObjectRequest{
		NamespaceName: &s.namespace, BucketName: &s.bucket, ObjectName: &name, IfMatch: head.ETag,
	})
	if err != nil {
		return "", fmt.Errorf("reading it back: %w", short(err))
	}
	defer resp.Content.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Content); err != nil {
		return "", fmt.Errorf("reading it back: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Revoke deletes every URL GetURL and PutURL handed out for key, before
// its time is over.
func (s *OCI) Revoke(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	blob, uploads := "o/"+key, "u/"+key+"/"
	err := errors.Join(
		s.deletePARs(ctx, blob, func(p parSummary) bool { return *p.ObjectName == blob }),
		s.deletePARs(ctx, uploads, func(p parSummary) bool { return uploadID.MatchString(strings.TrimPrefix(*p.ObjectName, uploads)) }),
	)
	if err != nil {
		return fmt.Errorf("revoke the URLs of %s: %w", key, err)
	}
	return nil
}

// stagedGrace is how long after its URL expired an upload may still be
// confirmed: a PUT begun in time may end later. Sweep then drops it.
const stagedGrace = time.Hour

// Sweep deletes the URLs this store handed out whose time is over, and
// the uploads never confirmed once stagedGrace more has passed. An
// expired PAR no longer works, but OCI does not say it ever removes one,
// so without a sweep they pile up in the bucket: the coordinator should
// call Sweep now and then (once an hour is plenty).
func (s *OCI) Sweep(ctx context.Context) error {
	now := s.now()
	s.mu.Lock()
	for url, par := range s.issued {
		if par.expires.Before(now) {
			delete(s.issued, url) // Sweep deletes it below
		}
	}
	s.mu.Unlock()
	pars, err := s.listPARs(ctx, "")
	if err != nil {
		return fmt.Errorf("sweep expired blob URLs: %w", err)
	}
	var errs []error
	for _, p := range pars {
		switch {
		case p.TimeExpires == nil || p.TimeExpires.After(now):
		case p.AccessType == objectstorage.PreauthenticatedRequestSummaryAccessTypeObjectread:
			errs = append(errs, s.deletePAR(ctx, *p.Id))
		case p.TimeExpires.Add(stagedGrace).Before(now) && strings.HasPrefix(*p.ObjectName, "u/"):
			// The upload first: were it left, no PAR would name it.
			if err := s.deleteObject(ctx, *p.ObjectName); err != nil {
				errs = append(errs, fmt.Errorf("deleting upload %s: %w", *p.ObjectName, err))
				continue
			}
			errs = append(errs, s.deletePAR(ctx, *p.Id))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sweep expired blob URLs: %w", err)
	}
	return nil
}

type parSummary = objectstorage.PreauthenticatedRequestSummary

// listPARs lists the PARs this store made on objects under prefix.
func (s *OCI) listPARs(ctx context.Context, prefix string) ([]parSummary, error) {
	var out []parSummary
	var page *string
	for {
		resp, err := s.client.ListPreauthenticatedRequests(sdkCtx(ctx), objectstorage.ListPreauthenticatedRequestsRequest{
			NamespaceName: &s.namespace, BucketName: &s.bucket, ObjectNamePrefix: &prefix, Page: page,
		})
		if err != nil {
			return nil, fmt.Errorf("listing PARs: %w", short(err))
		}
		for _, p := range resp.Items {
			if p.Id != nil && p.Name != nil && *p.Name == parName && p.ObjectName != nil {
				out = append(out, p)
			}
		}
		if resp.OpcNextPage == nil {
			return out, nil
		}
		page = resp.OpcNextPage
	}
}

// deletePARs deletes the PARs this store made on objects under prefix
// that match. They are deleted once listed, not while paging, so that no
// page shifts.
func (s *OCI) deletePARs(ctx context.Context, prefix string, match func(parSummary) bool) error {
	pars, err := s.listPARs(ctx, prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range pars {
		if match(p) {
			errs = append(errs, s.deletePAR(ctx, *p.Id))
		}
	}
	return errors.Join(errs...)
}

// deletePAR deletes a PAR; one gone meanwhile is not an error.
func (s *OCI) deletePAR(ctx context.Context, id string) error {
	_, err := s.client.DeletePreauthenticatedRequest(sdkCtx(ctx), objectstorage.DeletePreauthenticatedRequestRequest{
		NamespaceName: &s.namespace, BucketName: &s.bucket, ParId: &id,
	})
	if err != nil && !hasStatus(err, http.StatusNotFound) {
		return fmt.Errorf("deleting PAR %s: %w", id, short(err))
	}
	return nil
}
