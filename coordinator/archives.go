package coordinator

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// The archives of builds (their artifacts and caches) live in the blob
// store under keys that only the coordinator makes, from the build an
// agent runs and what it asks for:
//
//	artifacts/BUILD/ID.tar        a build's artifacts
//	caches/REPO/SCOPE/ID.tar      a repository's caches, per scope
//
// REPO and SCOPE are hashed: they hold URLs and branch names. An agent
// reaches only the archives of an attempt it runs now, writes caches only
// to its build's own scope, and reads artifacts of other builds only of
// the same repository.

// Archive kinds, as agents name them.
const (
	KindArtifact = "artifact"
	KindCache    = "cache"
)

const (
	// urlTTL is how long a URL handed to an agent works: long enough for
	// a large archive on a slow link, short for one that leaks.
	urlTTL = 15 * time.Minute
	// archiveChunk is the size of the pieces archives stream in.
	archiveChunk = 256 << 10
	// agentHeader carries the calling agent's id beside its credential.
	agentHeader = "monkeyci-agent"
)

// cacheID is a cache's id, with the digest of its key files when it has
// them (pipeline.Cache.KeyFiles).
var cacheID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}(@[0-9a-f]{64})?$`)

// crc32cHex is a CRC32C as agents send it.
var crc32cHex = regexp.MustCompile(`^[0-9a-f]{8}$`)

// ArtifactsPrefix is where a build's artifacts are, ArtifactKey one.
func ArtifactsPrefix(build string) string { return "artifacts/" + build + "/" }

// ArtifactKey is the key of artifact id of build.
func ArtifactKey(build, id string) string { return ArtifactsPrefix(build) + id + ".tar" }

// CachesPrefix is where a repository's caches are.
func CachesPrefix(repo string) string { return "caches/" + hashName(repo) + "/" }

func cacheKey(repo, scope, id string) string {
	return CachesPrefix(repo) + hashName(scope) + "/" + id + ".tar"
}

func hashName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}

// archiveRef is a request's archive: its key, and a cache's scope.
type archiveRef struct{ key, scope string }

// archiveOf decides which archive an agent's request names, or refuses
// it: the caller must be the agent that runs the request's attempt now.
func (c *Coordinator) archiveOf(ctx context.Context, r *fleet.BlobRequest, saving bool) (archiveRef, error) {
	if c.cfg.Blobs == nil {
		return archiveRef{}, status.Error(codes.FailedPrecondition, "this coordinator keeps no archives (it has no blob store)")
	}
	agent, err := c.callingAgent(ctx)
	if err != nil {
		return archiveRef{}, err
	}
	if !c.Leading() {
		// The leases are the leader's: the agent asks it again (its
		// address in the trailer), as it does with its stream.
		return archiveRef{}, c.standingBy(ctx)
	}
	ba := r.GetBuild()
	if why := c.leases.whyNotCurrent(ba.GetBuildId(), int(ba.GetAttempt()), agent); why != "" {
		return archiveRef{}, status.Error(codes.FailedPrecondition, why)
	}
	b, err := c.cfg.Store.GetBuild(ctx, ba.GetBuildId())
	if err != nil {
		return archiveRef{}, status.Errorf(codes.Unavailable, "reading build %s: %v", ba.GetBuildId(), err)
	}
	switch r.GetKind() {
	case KindArtifact:
		return c.artifactOf(ctx, b, r, saving)
	case KindCache:
		return cacheOf(b, r, saving)
	}
	return archiveRef{}, status.Errorf(codes.InvalidArgument, "archive kind %q: expected %s or %s", r.GetKind(), KindArtifact, KindCache)
}

func (c *Coordinator) artifactOf(ctx context.Context, b Build, r *fleet.BlobRequest, saving bool) (archiveRef, error) {
	if !pipeline.ValidID(r.GetId()) {
		return archiveRef{}, status.Errorf(codes.InvalidArgument, "artifact id %.64q: letters, digits, '.', '_' and '-' only", r.GetId())
	}
	from := r.GetFromBuild()
	switch {
	case from == "" || from == b.ID:
		return archiveRef{key: ArtifactKey(b.ID, r.GetId())}, nil
	case saving:
		return archiveRef{}, status.Error(codes.PermissionDenied, "a build saves only its own artifacts")
	}
	earlier, err := c.cfg.Store.GetBuild(ctx, from)
	if err != nil || earlier.Repo != b.Repo {
		return archiveRef{}, status.Errorf(codes.NotFound, "no build %.64q of this repository", from)
	}
	return archiveRef{key: ArtifactKey(earlier.ID, r.GetId())}, nil
}

func cacheOf(b Build, r *fleet.BlobRequest, saving bool) (archiveRef, error) {
	if !cacheID.MatchString(r.GetId()) {
		return archiveRef{}, status.Errorf(codes.InvalidArgument, "cache id %.64q: letters, digits, '.', '_' and '-', and @SHA256 of its key files", r.GetId())
	}
	scope := b.Cache.Scope
	if r.GetFallback() {
		if saving {
			return archiveRef{}, status.Error(codes.PermissionDenied, "a build writes caches only to its own scope, never to its fallback")
		}
		scope = b.Cache.Fallback
	}
	if scope == "" {
		return archiveRef{}, status.Errorf(codes.NotFound, "build %s has no such cache scope", b.ID)
	}
	return archiveRef{key: cacheKey(b.Repo, scope, r.GetId()), scope: scope}, nil
}

// callingAgent authenticates a call made outside an agent's stream: its
// id and credential in the call's metadata.
func (c *Coordinator) callingAgent(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	ids, auth := md.Get(agentHeader), md.Get("authorization")
	if len(ids) != 1 || len(auth) != 1 || len(auth[0]) < len("Bearer ") {
		return "", status.Error(codes.Unauthenticated, "an agent's call needs its id and credential")
	}
	a, err := c.cfg.Store.GetAgent(ctx, ids[0])
	if err != nil && !errors.Is(err, ErrNotFound) {
		return "", status.Errorf(codes.Unavailable, "reading agent %s: %v", ids[0], err) // the agent tries again
	}
	token := auth[0][len("Bearer "):]
	if err != nil || !a.Removed.IsZero() || subtle.ConstantTimeCompare([]byte(hashToken(token)), []byte(a.CredentialHash)) != 1 {
		return "", status.Error(codes.Unauthenticated, "unknown agent or wrong credential")
	}
	return a.ID, nil
}

// OpenBlob sends an archive's info, then its bytes; from a store that
// signs URLs, a URL to get them from instead.
func (s *FleetServer) OpenBlob(r *fleet.BlobRequest, stream fleet.Fleet_OpenBlobServer) error {
	c, ctx := s.c, stream.Context()
	ref, err := c.archiveOf(ctx, r, false)
	if err != nil {
		return err
	}
	if signer, ok := c.cfg.Blobs.(blob.Signer); ok {
		info, err := c.cfg.Blobs.Stat(ctx, ref.key)
		if err != nil {
			return blobStatus(err)
		}
		c.noteUse(r, ref)
		url, err := signer.GetURL(ctx, ref.key, urlTTL)
		if err != nil {
			return blobStatus(err)
		}
		c.handedURL(r.GetBuild().GetBuildId(), url)
		return stream.Send(infoPiece(&fleet.BlobInfo{Size: info.Size, Sha256: info.SHA256, Crc32C: info.CRC32C, Scope: ref.scope, Url: url}))
	}
	rc, info, err := c.cfg.Blobs.Get(ctx, ref.key)
	if err != nil {
		return blobStatus(err)
	}
	defer rc.Close()
	c.noteUse(r, ref)
	if err := stream.Send(infoPiece(&fleet.BlobInfo{Size: info.Size, Sha256: info.SHA256, Crc32C: info.CRC32C, Scope: ref.scope})); err != nil {
		return err
	}
	return sendPieces(rc, func(b []byte) error {
		return stream.Send(&fleet.BlobPiece{Piece: &fleet.BlobPiece_Data{Data: b}})
	})
}

// noteUse notes that a cache is being restored: retention keeps the
// most recently used.
func (c *Coordinator) noteUse(r *fleet.BlobRequest, ref archiveRef) {
	if r.GetKind() == KindCache {
		c.cacheUses.used(ref.key, c.cfg.Now())
	}
}

func infoPiece(i *fleet.BlobInfo) *fleet.BlobPiece {
	return &fleet.BlobPiece{Piece: &fleet.BlobPiece_Info{Info: i}}
}

// PrepareBlob hands out a URL to PUT an archive to, from a store that
// signs them; from another, nothing: the bytes go to SaveBlob.
func (s *FleetServer) PrepareBlob(ctx context.Context, r *fleet.BlobRequest) (*fleet.BlobInfo, error) {
	c := s.c
	want, err := saidInfo(r)
	if err != nil {
		return nil, err
	}
	ref, err := c.archiveOf(ctx, r, true)
	if err != nil {
		return nil, err
	}
	signer, ok := c.cfg.Blobs.(blob.Signer)
	if !ok {
		return &fleet.BlobInfo{Scope: ref.scope}, nil
	}
	up, err := signer.PutURL(ctx, ref.key, urlTTL, want)
	if err != nil {
		return nil, blobStatus(err)
	}
	c.handedURL(r.GetBuild().GetBuildId(), up.URL)
	return &fleet.BlobInfo{Scope: ref.scope, Url: up.URL, Headers: up.Headers, Upload: up.ID}, nil
}

// SaveBlob stores an archive sent on the stream, or confirms one PUT to
// PrepareBlob's URL. Either way it counts as saved only once its size
// and digest are what the agent said.
func (s *FleetServer) SaveBlob(stream fleet.Fleet_SaveBlobServer) error {
	c, ctx := s.c, stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	r := first.GetRequest()
	if r == nil {
		return status.Error(codes.InvalidArgument, "the first piece of a saved archive must be its request")
	}
	want, err := saidInfo(r)
	if err != nil {
		return err
	}
	ref, err := c.archiveOf(ctx, r, true)
	if err != nil {
		return err
	}
	var info blob.Info
	if r.GetUploaded() {
		signer, ok := c.cfg.Blobs.(blob.Signer)
		if !ok {
			return status.Error(codes.FailedPrecondition, "this coordinator's store takes archives on the stream, not by URL")
		}
		info, err = signer.Confirm(ctx, ref.key, r.GetUpload(), want)
	} else {
		info, err = blob.PutVerified(ctx, c.cfg.Blobs, ref.key, &pieceReader{stream: stream}, want)
	}
	if err != nil {
		return blobStatus(err)
	}
	if r.GetKind() == KindArtifact {
		c.listings.forget(r.GetBuild().GetBuildId()) // listed before it was saved
	}
	return stream.SendAndClose(&fleet.BlobInfo{Size: info.Size, Sha256: info.SHA256, Scope: ref.scope})
}

// saidInfo is the size and digest an agent says its archive has.
func saidInfo(r *fleet.BlobRequest) (blob.Info, error) {
	sum, err := hex.DecodeString(r.GetSha256())
	if err != nil || len(sum) != sha256.Size || r.GetSize() < 0 {
		return blob.Info{}, status.Errorf(codes.InvalidArgument, "an archive is saved with its size and sha256 (got %d, %.70q)", r.GetSize(), r.GetSha256())
	}
	if crc := r.GetCrc32C(); crc != "" && !crc32cHex.MatchString(crc) {
		return blob.Info{}, status.Errorf(codes.InvalidArgument, "crc32c %.20q: expected 8 hex digits", crc)
	}
	return blob.Info{Size: r.GetSize(), SHA256: hex.EncodeToString(sum), CRC32C: r.GetCrc32C()}, nil
}

// pieceReader reads the data pieces of a SaveBlob stream.
type pieceReader struct {
	stream fleet.Fleet_SaveBlobServer
	rest   []byte
}

func (p *pieceReader) Read(b []byte) (int, error) {
	for len(p.rest) == 0 {
		m, err := p.stream.Recv()
		if err != nil {
			return 0, err // io.EOF at the end
		}
		if _, ok := m.GetPiece().(*fleet.BlobPiece_Data); !ok {
			return 0, errors.New("an archive's pieces after the first are its bytes")
		}
		p.rest = m.GetData()
	}
	n := copy(b, p.rest)
	p.rest = p.rest[n:]
	return n, nil
}

// blobStatus turns a blob store's error into the status an agent reads.
func blobStatus(err error) error {
	var mismatch *blob.MismatchError
	switch {
	case errors.Is(err, blob.ErrNotFound):
		return status.Error(codes.NotFound, "nothing saved under that id")
	case errors.As(err, &mismatch):
		return status.Error(codes.DataLoss, mismatch.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Unavailable, fmt.Sprintf("the blob store: %v", err))
}
