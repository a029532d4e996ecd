package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Artifact is an artifact a build saved, as people download it.
type Artifact struct {
	ID     string
	Size   int64
	SHA256 string
	Saved  time.Time
}

// Artifacts lists what build saved, by id. A listing is kept a few
// seconds: a build's page asks again at every refresh, and listing a
// bucket costs requests.
func (c *Coordinator) Artifacts(ctx context.Context, build string) ([]Artifact, error) {
	if c.cfg.Blobs == nil {
		return nil, nil
	}
	if as, ok := c.listings.get(build, c.cfg.Now()); ok {
		return as, nil
	}
	as, err := c.listArtifacts(ctx, build)
	if err == nil {
		c.listings.put(build, as, c.cfg.Now())
	}
	return as, err
}

func (c *Coordinator) listArtifacts(ctx context.Context, build string) ([]Artifact, error) {
	infos, err := c.cfg.Blobs.List(ctx, ArtifactsPrefix(build))
	if err != nil {
		return nil, err
	}
	var out []Artifact
	for _, i := range infos {
		id, ok := strings.CutSuffix(strings.TrimPrefix(i.Key, ArtifactsPrefix(build)), ".tar")
		if ok && pipeline.ValidID(id) {
			out = append(out, Artifact{ID: id, Size: i.Size, SHA256: i.SHA256, Saved: i.Modified})
		}
	}
	return out, nil
}

// OpenArtifact opens an artifact of build (ErrNotFound).
func (c *Coordinator) OpenArtifact(ctx context.Context, build, id string) (io.ReadCloser, Artifact, error) {
	if c.cfg.Blobs == nil || !pipeline.ValidID(id) {
		return nil, Artifact{}, notFound(fmt.Sprintf("build %s saved no artifact %.64q", build, id))
	}
	rc, info, err := c.cfg.Blobs.Get(ctx, ArtifactKey(build, id))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, Artifact{}, notFound(fmt.Sprintf("build %s saved no artifact %q", build, id))
	}
	if err != nil {
		return nil, Artifact{}, err
	}
	return rc, Artifact{ID: id, Size: info.Size, SHA256: info.SHA256, Saved: info.Modified}, nil
}

func artifactInfo(a Artifact) *fleet.ArtifactInfo {
	return &fleet.ArtifactInfo{Id: a.ID, Size: a.Size, Sha256: a.SHA256, Saved: timestamppb.New(a.Saved)}
}

// ListArtifacts lists a build's artifacts.
func (s *AdminServer) ListArtifacts(ctx context.Context, r *fleet.BuildRef) (*fleet.ListArtifactsResponse, error) {
	id, err := s.resolveBuild(ctx, r.GetId())
	if err != nil {
		return nil, err
	}
	as, err := s.c.Artifacts(ctx, id)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "listing artifacts: %v", err)
	}
	out := &fleet.ListArtifactsResponse{Build: id}
	for _, a := range as {
		out.Artifacts = append(out.Artifacts, artifactInfo(a))
	}
	return out, nil
}

// GetArtifact sends an artifact: its info, then its bytes.
func (s *AdminServer) GetArtifact(r *fleet.ArtifactRef, out fleet.Admin_GetArtifactServer) error {
	ctx := out.Context()
	id, err := s.resolveBuild(ctx, r.GetBuild())
	if err != nil {
		return err
	}
	rc, a, err := s.c.OpenArtifact(ctx, id, r.GetId())
	if err != nil {
		return storeError(err)
	}
	defer rc.Close()
	if err := out.Send(&fleet.ArtifactChunk{Info: artifactInfo(a)}); err != nil {
		return err
	}
	return sendPieces(rc, func(b []byte) error { return out.Send(&fleet.ArtifactChunk{Data: b}) })
}

// sendPieces sends what r holds in pieces of archiveChunk bytes.
func sendPieces(r io.Reader, send func([]byte) error) error {
	buf := make([]byte, archiveChunk)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if err := send(buf[:n]); err != nil {
				return err
			}
		}
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return nil
		case err != nil:
			return status.Errorf(codes.Unavailable, "reading the archive: %v", err)
		}
	}
}

// listingTTL is how long a build's artifact listing is kept; at most
// maxListings are.
const (
	listingTTL  = 5 * time.Second
	maxListings = 1024
)

// artifactListings keeps builds' artifact listings for listingTTL.
type artifactListings struct {
	mu   sync.Mutex
	byID map[string]artifactListing
}

type artifactListing struct {
	as []Artifact
	at time.Time
}

func (l *artifactListings) get(build string, now time.Time) ([]Artifact, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byID[build]
	if !ok || now.Sub(e.at) > listingTTL {
		return nil, false
	}
	return e.as, true
}

func (l *artifactListings) put(build string, as []Artifact, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byID == nil || len(l.byID) >= maxListings {
		l.byID = map[string]artifactListing{} // a few seconds' worth: start again
	}
	l.byID[build] = artifactListing{as, now}
}

func (l *artifactListings) forget(build string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byID, build)
}
