package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// ArtifactJSON is an artifact in -o json.
type ArtifactJSON struct {
	ID     string     `json:"id"`
	Size   int64      `json:"size"`
	SHA256 string     `json:"sha256"`
	Saved  *time.Time `json:"saved"`
}

// ArtifactsJSON is `artifacts ls -o json`: the build's whole id (the
// command takes the start of one) and what it saved.
type ArtifactsJSON struct {
	Build     string         `json:"build"`
	Artifacts []ArtifactJSON `json:"artifacts"`
}

// Artifacts is r in -o json.
func Artifacts(r *fleet.ListArtifactsResponse) ArtifactsJSON {
	return ArtifactsJSON{Build: r.GetBuild(), Artifacts: each(r.GetArtifacts(), func(a *fleet.ArtifactInfo) ArtifactJSON {
		return ArtifactJSON{ID: a.GetId(), Size: a.GetSize(), SHA256: a.GetSha256(), Saved: TimeOf(a.GetSaved())}
	})}
}

// ArtifactsTable writes artifacts as a table: ID SIZE SHA256 SAVED, the
// digest shortened, saved in local time and how long ago as of now.
func ArtifactsTable(w io.Writer, as []*fleet.ArtifactInfo, now time.Time) error {
	tw := newTable(w)
	row(tw, "ID", "SIZE", "SHA256", "SAVED")
	for _, a := range as {
		row(tw, a.GetId(), Bytes(a.GetSize()), cell(ShortCommit(a.GetSha256())), stamp(a.GetSaved(), now))
	}
	return tw.Flush()
}

// FetchArtifact writes artifact id of build (a build id or the start of
// one) to w as the coordinator sends it, an uncompressed tar archive, and
// returns what the coordinator said of it. The bytes are checked against
// that size and digest as they pass: a mismatch is an error after the last
// byte, so w holds the bytes received but they are not the artifact. The
// coordinator's refusals are returned as they are (Describe says them).
func FetchArtifact(ctx context.Context, c fleet.AdminClient, build, id string, w io.Writer) (*fleet.ArtifactInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream when w fails
	stream, err := c.GetArtifact(ctx, &fleet.ArtifactRef{Build: build, Id: id})
	if err != nil {
		return nil, err
	}
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("artifact %s: the coordinator sent nothing", id)
	}
	if err != nil {
		return nil, err
	}
	info := first.GetInfo()
	if info == nil {
		return nil, fmt.Errorf("artifact %s: the coordinator sent bytes before saying what they are", id)
	}
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, sum), &chunkReader{stream: stream, buf: first.GetData()})
	if err != nil {
		return info, err
	}
	if n != info.GetSize() {
		return info, fmt.Errorf("artifact %s: received %d bytes, the coordinator said %d: the download is damaged", id, n, info.GetSize())
	}
	if want := strings.ToLower(info.GetSha256()); want != "" {
		if got := hex.EncodeToString(sum.Sum(nil)); got != want {
			return info, fmt.Errorf("artifact %s: received bytes with sha256 %s, the coordinator said %s: the download is damaged", id, ShortCommit(got), ShortCommit(want))
		}
	}
	return info, nil
}

// chunkReader reads the data of an artifact's chunks. Its errors are the
// stream's, unwrapped, so that Describe can say them; the writer's errors
// are io.Copy's and wrapped by the caller.
type chunkReader struct {
	stream interface {
		Recv() (*fleet.ArtifactChunk, error)
	}
	buf []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		c, err := r.stream.Recv()
		if err != nil {
			return 0, err // io.EOF at the end
		}
		r.buf = c.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
