package coordinator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/internal/s3test"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// archiveCaller makes an agent's archive calls by hand.
type archiveCaller struct {
	c         fleet.FleetClient
	id, token string
}

func newArchiveCaller(t *testing.T, addr, id, token string) archiveCaller {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return archiveCaller{c: fleet.NewFleetClient(conn), id: id, token: token}
}

func (a archiveCaller) ctx(ctx context.Context) context.Context {
	if a.id == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "monkeyci-agent", a.id, "authorization", "Bearer "+a.token)
}

// save stores data as r says it is (size and digest), on the stream, or
// with a PUT to the URL the coordinator hands out.
func (a archiveCaller) save(ctx context.Context, r *fleet.BlobRequest, data []byte) error {
	ctx = a.ctx(ctx)
	grant, err := a.c.PrepareBlob(ctx, r)
	if err != nil {
		return err
	}
	if grant.GetUrl() != "" {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, grant.GetUrl(), bytes.NewReader(data))
		for k, v := range grant.GetHeaders() {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New("the store refused the upload: " + resp.Status)
		}
		r.Uploaded, r.Upload = true, grant.GetUpload()
	}
	stream, err := a.c.SaveBlob(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&fleet.BlobPiece{Piece: &fleet.BlobPiece_Request{Request: r}}); err != nil {
		_, err = stream.CloseAndRecv()
		return err
	}
	if !r.Uploaded {
		if err := stream.Send(&fleet.BlobPiece{Piece: &fleet.BlobPiece_Data{Data: data}}); err != nil {
			_, err = stream.CloseAndRecv()
			return err
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

// open reads an archive, from the stream or the URL handed out.
func (a archiveCaller) open(ctx context.Context, r *fleet.BlobRequest) ([]byte, *fleet.BlobInfo, error) {
	stream, err := a.c.OpenBlob(a.ctx(ctx), r)
	if err != nil {
		return nil, nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, nil, err
	}
	info := first.GetInfo()
	var out bytes.Buffer
	if info.GetUrl() != "" {
		resp, err := http.Get(info.GetUrl())
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(&out, resp.Body)
		return out.Bytes(), info, err
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out.Bytes(), info, nil
		}
		if err != nil {
			return nil, nil, err
		}
		out.Write(m.GetData())
	}
}

func said(r *fleet.BlobRequest, data []byte) *fleet.BlobRequest {
	sum := sha256.Sum256(data)
	r.Size, r.Sha256, r.Crc32C = int64(len(data)), hex.EncodeToString(sum[:]), crc32cOf(data)
	return r
}

func crc32cOf(data []byte) string {
	return fmt.Sprintf("%08x", crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)))
}

// runningAttempt queues a build of repo on branch and has a hand-driven
// agent take it: the attempt, and the agent's archive caller.
func runningAttempt(t *testing.T, f *fleetFixture, repo, branch string) (*fleet.BuildAttempt, archiveCaller, *fleettest.Agent) {
	t.Helper()
	ctx := context.Background()
	b, err := f.c.Trigger(ctx, coordinator.Build{Repo: repo, Source: coordinator.Source{URL: "/nowhere", Branch: branch}})
	if err != nil {
		t.Fatal(err)
	}
	a := fleettest.Dial(t, f.addr)
	w := a.Welcome(t, fleettest.Hello("raw-"+b.ID, "join-secret", &fleet.Capacity{MilliCpus: 4000, Memory: 8 << 30}))
	m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign() != nil })
	if err != nil {
		t.Fatal(err)
	}
	ba := m.GetAssign().GetBuild()
	if ba.GetBuildId() != b.ID {
		t.Fatalf("assigned %v, want build %s", ba, b.ID)
	}
	a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Accept{Accept: &fleet.Accept{Build: ba}}})
	return ba, newArchiveCaller(t, f.addr, w.GetId(), w.GetCredential()), a
}

// An agent reaches only the archives of the attempt it runs now: in its
// build's own artifacts and cache scope, a fallback scope read only, what
// it says it sends verified before it counts; nothing once the attempt
// has ended. Through both kinds of store: the coordinator's disk (bytes
// on the stream) and an S3 server (bytes through signed URLs).
func TestAnAgentReachesOnlyItsRunningAttemptsArchives(t *testing.T) {
	backends := map[string]func(t *testing.T) blob.Store{
		"disk": func(t *testing.T) blob.Store {
			d, err := blob.OpenDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		"s3": func(t *testing.T) blob.Store {
			srv := s3test.Start(t)
			c, _ := blob.ParseS3URL(srv.URL())
			c.AccessKey, c.SecretKey = srv.AccessKey, srv.SecretKey
			s, err := blob.OpenS3(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			f := newFleet(t, time.Minute, func(c *coordinator.Config) { c.Blobs = store })
			archivesAreFenced(t, f)
		})
	}
}

func archivesAreFenced(t *testing.T, f *fleetFixture) {
	ctx := context.Background()
	ba, owner, stream := runningAttempt(t, f, "acme/app", "feature")
	other := fleettest.Dial(t, f.addr)
	ow := other.Welcome(t, fleettest.Hello("bystander", "join-secret", &fleet.Capacity{}))
	bystander := newArchiveCaller(t, f.addr, ow.GetId(), ow.GetCredential())
	anon := newArchiveCaller(t, f.addr, "", "")
	forger := newArchiveCaller(t, f.addr, ow.GetId(), owner.token) // another's credential

	artifact := func() *fleet.BlobRequest { return &fleet.BlobRequest{Build: ba, Kind: "artifact", Id: "bin"} }
	data := []byte("the build's binary")
	refused := []struct {
		name   string
		caller archiveCaller
		req    *fleet.BlobRequest
		code   codes.Code
	}{
		{"no credential", anon, artifact(), codes.Unauthenticated},
		{"another agent's credential", forger, artifact(), codes.Unauthenticated},
		{"an agent not running the attempt", bystander, artifact(), codes.FailedPrecondition},
		{"a stale attempt", owner, &fleet.BlobRequest{Build: &fleet.BuildAttempt{BuildId: ba.GetBuildId(), Attempt: ba.GetAttempt() + 1}, Kind: "artifact", Id: "bin"}, codes.FailedPrecondition},
		{"a path for an id", owner, &fleet.BlobRequest{Build: ba, Kind: "artifact", Id: "../../caches/x"}, codes.InvalidArgument},
		{"a cache id with a slash", owner, &fleet.BlobRequest{Build: ba, Kind: "cache", Id: "a/b"}, codes.InvalidArgument},
		{"a cache key that is no digest", owner, &fleet.BlobRequest{Build: ba, Kind: "cache", Id: "deps@../x"}, codes.InvalidArgument},
		{"an unknown kind", owner, &fleet.BlobRequest{Build: ba, Kind: "log", Id: "x"}, codes.InvalidArgument},
		{"the fallback scope", owner, &fleet.BlobRequest{Build: ba, Kind: "cache", Id: "deps", Fallback: true}, codes.PermissionDenied},
		{"another build's artifact", owner, &fleet.BlobRequest{Build: ba, Kind: "artifact", Id: "bin", FromBuild: "someone-elses"}, codes.PermissionDenied},
	}
	for _, tc := range refused {
		if err := tc.caller.save(ctx, said(tc.req, data), data); status.Code(err) != tc.code {
			t.Errorf("saving with %s: %v, want %s", tc.name, err, tc.code)
		}
	}
	// What it says it sends is what must arrive.
	lie := said(artifact(), []byte("something else"))
	if err := owner.save(ctx, lie, data); err == nil {
		t.Error("an archive that is not what was said was saved")
	}
	if _, _, err := owner.open(ctx, artifact()); status.Code(err) != codes.NotFound {
		t.Errorf("after a refused save, open: %v, want NotFound", err)
	}
	if err := owner.save(ctx, said(artifact(), data), data); err != nil {
		t.Fatal(err)
	}
	if got, _, err := owner.open(ctx, artifact()); err != nil || !bytes.Equal(got, data) {
		t.Errorf("open of a saved artifact: %q %v", got, err)
	}
	if _, _, err := bystander.open(ctx, artifact()); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("open by an agent not running it: %v", err)
	}
	// A cache goes to the build's scope, and is read there.
	cache := &fleet.BlobRequest{Build: ba, Kind: "cache", Id: "deps"}
	if err := owner.save(ctx, said(cache, data), data); err != nil {
		t.Fatal(err)
	}
	if _, info, err := owner.open(ctx, &fleet.BlobRequest{Build: ba, Kind: "cache", Id: "deps"}); err != nil || info.GetScope() != "branch:feature" || info.GetCrc32C() != crc32cOf(data) {
		t.Errorf("open of the cache: %v %v, want its scope and the crc32c %s it was saved with", info, err, crc32cOf(data))
	}
	if _, _, err := owner.open(ctx, &fleet.BlobRequest{Build: ba, Kind: "cache", Id: "deps", Fallback: true}); status.Code(err) != codes.NotFound {
		t.Errorf("open of the fallback scope's cache, which nobody saved: %v", err)
	}
	// Once the attempt has ended, its agent reaches nothing of it.
	stream.Send(t, fleettest.Done(ba, events.Success, 0))
	f.waitEnded(t, ba.GetBuildId())
	if _, _, err := owner.open(ctx, artifact()); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("open after the attempt ended: %v", err)
	}
	if err := owner.save(ctx, said(cache, data), data); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("save after the attempt ended: %v", err)
	}
}

// An upload cut off half way (its agent killed) leaves nothing that counts
// as saved: the next build finds no archive rather than half of one.
func TestAnInterruptedUploadCountsForNothing(t *testing.T) {
	f := newFleet(t, time.Minute)
	ba, owner, _ := runningAttempt(t, f, "acme/app", "main")
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	ctx, cancel := context.WithCancel(owner.ctx(context.Background()))
	stream, err := owner.c.SaveBlob(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := said(&fleet.BlobRequest{Build: ba, Kind: "cache", Id: "deps"}, data)
	if err := stream.Send(&fleet.BlobPiece{Piece: &fleet.BlobPiece_Request{Request: req}}); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&fleet.BlobPiece{Piece: &fleet.BlobPiece_Data{Data: data[:len(data)/2]}}); err != nil {
		t.Fatal(err)
	}
	cancel() // the agent is gone
	if _, err := stream.CloseAndRecv(); err == nil {
		t.Fatal("a cut-off upload was answered as saved")
	}
	if _, _, err := owner.open(context.Background(), &fleet.BlobRequest{Build: ba, Kind: "cache", Id: "deps"}); status.Code(err) != codes.NotFound {
		t.Errorf("after a cut-off upload, open: %v, want NotFound", err)
	}
	left, err := f.blobs.List(context.Background(), "")
	if err != nil || len(left) != 0 {
		t.Errorf("the store holds %v after a cut-off upload (%v)", left, err)
	}
}
