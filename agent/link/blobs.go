package link

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// blobChunk is the size of the pieces an archive is sent in.
const blobChunk = 256 << 10

// attemptBlobs is an attempt's archives in the fleet's store (agent.Blobs):
// each call names the attempt and carries the agent's credential, and the
// bytes go to or from a URL the coordinator hands out (an object store),
// or on the call's stream (the coordinator's disk).
type attemptBlobs struct {
	l    *Link
	ba   *fleet.BuildAttempt
	http *http.Client
}

var _ agent.Blobs = (*attemptBlobs)(nil)

func (l *Link) blobsOf(ba *fleet.BuildAttempt) *attemptBlobs {
	return &attemptBlobs{l: l, ba: ba, http: l.cfg.HTTP}
}

// client is the fleet service on the link's own connection for calls
// outside the stream (made once, kept until Run returns).
func (l *Link) client() (fleet.FleetClient, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls == nil {
		conn, err := l.dial(l.at)
		if err != nil {
			return nil, err
		}
		l.calls = conn
	}
	return fleet.NewFleetClient(l.calls), nil
}

// authorized is ctx with the agent's id and credential for the coordinator.
func (l *Link) authorized(ctx context.Context) context.Context {
	l.mu.Lock()
	id, token := l.id, l.token
	l.mu.Unlock()
	return metadata.AppendToOutgoingContext(ctx, "monkeyci-agent", id, "authorization", "Bearer "+token)
}

func (a *attemptBlobs) request(ref agent.ArchiveRef) *fleet.BlobRequest {
	return &fleet.BlobRequest{Build: a.ba, Kind: string(ref.Kind), Id: ref.ID, Fallback: ref.Fallback, FromBuild: ref.FromBuild}
}

// archiveCallWait bounds how long an archive's call waits for a coordinator
// that leads: a failover takes --leader-ttl (3 s by default) and the
// agents' move, with room to spare.
const archiveCallWait = time.Minute

// whileFailingOver makes call again while it fails because the
// coordinator it reached is gone or stands by (Unavailable): meanwhile
// the link finds the leader (leader.go), where the next call goes. A job
// saving its artifact through a failover waits rather than fails.
func whileFailingOver(ctx context.Context, call func() error) error {
	deadline := time.Now().Add(archiveCallWait)
	pause := 100 * time.Millisecond
	for {
		err := call()
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
}

// Open asks for the archive; its bytes come on first Read.
func (a *attemptBlobs) Open(ctx context.Context, ref agent.ArchiveRef) (rc io.ReadCloser, info agent.ArchiveInfo, err error) {
	err = whileFailingOver(ctx, func() (err error) {
		rc, info, err = a.open(ctx, ref)
		return err
	})
	return rc, info, err
}

func (a *attemptBlobs) open(ctx context.Context, ref agent.ArchiveRef) (io.ReadCloser, agent.ArchiveInfo, error) {
	c, err := a.l.client()
	if err != nil {
		return nil, agent.ArchiveInfo{}, err
	}
	ctx, cancel := context.WithCancel(a.l.authorized(ctx))
	stream, err := c.OpenBlob(ctx, a.request(ref))
	if err == nil {
		var first *fleet.BlobPiece
		if first, err = stream.Recv(); err == nil && first.GetInfo() == nil {
			err = errors.New("the coordinator sent an archive without its info")
		}
		if err == nil {
			info := first.GetInfo()
			got := agent.ArchiveInfo{Size: info.GetSize(), SHA256: info.GetSha256(), CRC32C: info.GetCrc32C()}
			if info.GetUrl() != "" {
				return &urlReader{ctx: ctx, cancel: cancel, client: a.http, url: info.GetUrl()}, got, nil
			}
			return &streamReader{stream: stream, cancel: cancel}, got, nil
		}
	}
	cancel()
	if status.Code(err) == codes.NotFound {
		return nil, agent.ArchiveInfo{}, agent.ErrNoArchive
	}
	return nil, agent.ArchiveInfo{}, fmt.Errorf("the coordinator: %w", err)
}

// Save sends the archive to the URL the coordinator hands out and has it
// confirmed, or sends it on the stream.
func (a *attemptBlobs) Save(ctx context.Context, ref agent.ArchiveRef, file string, info agent.ArchiveInfo) error {
	return whileFailingOver(ctx, func() error { return a.save(ctx, ref, file, info) })
}

func (a *attemptBlobs) save(ctx context.Context, ref agent.ArchiveRef, file string, info agent.ArchiveInfo) error {
	c, err := a.l.client()
	if err != nil {
		return err
	}
	ctx = a.l.authorized(ctx)
	req := a.request(ref)
	req.Size, req.Sha256, req.Crc32C = info.Size, info.SHA256, info.CRC32C
	grant, err := c.PrepareBlob(ctx, req)
	if err != nil {
		return fmt.Errorf("the coordinator: %w", err)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	stream, err := c.SaveBlob(ctx)
	if err != nil {
		return fmt.Errorf("the coordinator: %w", err)
	}
	if grant.GetUrl() != "" {
		if err := a.put(ctx, grant, f, info.Size); err != nil {
			return err
		}
		req.Uploaded, req.Upload = true, grant.GetUpload()
	}
	if err := stream.Send(&fleet.BlobPiece{Piece: &fleet.BlobPiece_Request{Request: req}}); err != nil {
		return saveErr(stream, err)
	}
	if !req.Uploaded {
		buf := make([]byte, blobChunk)
		for {
			n, rerr := io.ReadFull(f, buf)
			if n > 0 {
				if err := stream.Send(&fleet.BlobPiece{Piece: &fleet.BlobPiece_Data{Data: buf[:n]}}); err != nil {
					return saveErr(stream, err)
				}
			}
			if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
				break
			}
			if rerr != nil {
				return rerr
			}
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return fmt.Errorf("the coordinator: %w", err)
	}
	return nil
}

// saveErr is why a send on a SaveBlob stream failed: the coordinator's
// answer, which the send itself does not carry.
func saveErr(stream grpc.ClientStreamingClient[fleet.BlobPiece, fleet.BlobInfo], err error) error {
	if errors.Is(err, io.EOF) {
		_, err = stream.CloseAndRecv()
	}
	return fmt.Errorf("the coordinator: %w", err)
}

// put uploads an archive to a URL the coordinator signed.
func (a *attemptBlobs) put(ctx context.Context, grant *fleet.BlobInfo, body io.Reader, size int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, grant.GetUrl(), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	for k, v := range grant.GetHeaders() {
		req.Header.Set(k, v)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("uploading: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("uploading: the store answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// streamReader reads an archive's data pieces.
type streamReader struct {
	stream grpc.ServerStreamingClient[fleet.BlobPiece]
	cancel context.CancelFunc
	rest   []byte
}

func (r *streamReader) Read(p []byte) (int, error) {
	for len(r.rest) == 0 {
		m, err := r.stream.Recv()
		if err != nil {
			return 0, err // io.EOF at the end
		}
		r.rest = m.GetData()
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

func (r *streamReader) Close() error { r.cancel(); return nil }

// urlReader GETs an archive from a URL the coordinator signed, on first Read.
type urlReader struct {
	ctx    context.Context
	cancel context.CancelFunc
	client *http.Client
	url    string
	body   io.ReadCloser
}

func (r *urlReader) Read(p []byte) (int, error) {
	if r.body == nil {
		req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.url, nil)
		if err != nil {
			return 0, err
		}
		resp, err := r.client.Do(req)
		if err != nil {
			return 0, fmt.Errorf("downloading: %w", err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return 0, fmt.Errorf("downloading: the store answered %s", resp.Status)
		}
		r.body = resp.Body
	}
	return r.body.Read(p)
}

func (r *urlReader) Close() error {
	r.cancel()
	if r.body != nil {
		return r.body.Close()
	}
	return nil
}
