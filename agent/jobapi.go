package agent

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// MaxSocketPath is the longest path a unix socket address holds: the
// kernel's sun_path less its closing NUL (107 bytes on Linux).
const MaxSocketPath = len(syscall.RawSockaddrUnix{}.Path) - 1

// jobServer serves the job API of one build on a unix socket. It sends no
// keepalive pings: a frozen script cannot answer them (docs/architecture.md, Pausing).
type jobServer struct {
	jobapi.UnimplementedJobAPIServer
	b *build
}

var _ jobapi.JobAPIServer = (*jobServer)(nil)

// serveJobAPI listens on socket and serves until the returned stop is called.
func serveJobAPI(socket, token string, b *build) (stop func(), err error) {
	if len(socket) > MaxSocketPath {
		return nil, fmt.Errorf("job API: the socket path %s is %d bytes, longer than a unix socket allows (%d): use a shorter state directory", socket, len(socket), MaxSocketPath)
	}
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return nil, fmt.Errorf("job API: %w", err)
	}
	// The script runs as root inside its container; the socket's directory
	// is only mounted into that container.
	if err := os.Chmod(socket, 0o666); err != nil {
		l.Close()
		return nil, fmt.Errorf("job API: %w", err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(checkToken(token), b.waitSource, b.pauser.track),
		// No keepalive pings at all: gRPC's default pings an idle client
		// after two hours, and a script frozen through a long job cannot
		// answer, which would cut its await.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: time.Duration(math.MaxInt64)}))
	jobapi.RegisterJobAPIServer(srv, &jobServer{b: b})
	go func() { _ = srv.Serve(l) }()
	return srv.Stop, nil
}

// checkToken refuses calls without the build's token.
func checkToken(token string) grpc.UnaryServerInterceptor {
	want := []byte("Bearer " + token)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		got := md.Get("authorization")
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), want) != 1 {
			return nil, status.Error(codes.Unauthenticated, "this call does not carry the build's token")
		}
		return next(ctx, req)
	}
}

// waitSource holds a job API call until the source is fetched.
func (b *build) waitSource(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	select {
	case <-b.sourced:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if b.sourceErr != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "the build could not start: %v", b.sourceErr)
	}
	return next(ctx, req)
}

// track counts every call but awaits, which count themselves.
func (p *pauser) track(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	if strings.HasSuffix(info.FullMethod, "/AwaitJobs") || strings.HasSuffix(info.FullMethod, "/AwaitUnblock") ||
		strings.HasSuffix(info.FullMethod, "/JobAddress") {
		return next(ctx, req)
	}
	p.callBegin(ctx)
	defer p.callEnd()
	return next(ctx, req)
}

func (s *jobServer) StartJob(ctx context.Context, req *jobapi.StartJobRequest) (*jobapi.StartJobResponse, error) {
	if s.b.claimAhead(req.GetJob()) {
		return &jobapi.StartJobResponse{}, nil
	}
	job, err := jobapi.JobFromProto(req.GetJob())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.b.startJob(job); err != nil {
		return nil, startStatus(err)
	}
	return &jobapi.StartJobResponse{}, nil
}

// startStatus is the answer to a job or action that could not start: a
// duplicate id, an unknown dependency, or a build that is ending.
func startStatus(err error) error {
	switch {
	case errors.Is(err, errDuplicateJob):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.As(err, new(unknownDepError)):
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return status.Error(codes.FailedPrecondition, err.Error())
}

func (s *jobServer) AwaitJobs(ctx context.Context, req *jobapi.AwaitJobsRequest) (*jobapi.AwaitJobsResponse, error) {
	results, err := s.b.await(ctx, req.GetIds(), req.GetAny())
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	resp := &jobapi.AwaitJobsResponse{}
	for _, r := range results {
		resp.Results = append(resp.Results, &jobapi.JobResult{Id: r.id, Status: string(r.status), Exit: int32(r.exit), Message: r.message})
	}
	return resp, nil
}

func (s *jobServer) SkipJob(ctx context.Context, req *jobapi.SkipJobRequest) (*jobapi.SkipJobResponse, error) {
	if err := s.b.skipJob(req.GetId(), req.GetReason()); err != nil {
		return nil, status.Error(codes.AlreadyExists, err.Error())
	}
	return &jobapi.SkipJobResponse{}, nil
}

func (s *jobServer) GetParams(ctx context.Context, req *jobapi.GetParamsRequest) (*jobapi.GetParamsResponse, error) {
	return &jobapi.GetParamsResponse{Params: s.b.params}, nil
}

func (s *jobServer) StopJob(ctx context.Context, req *jobapi.StopJobRequest) (*jobapi.StopJobResponse, error) {
	if err := s.b.stopJob(req.GetId()); err != nil {
		if errors.Is(err, errNoSuchJob) {
			return nil, status.Error(codes.NotFound, err.Error())
		}
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &jobapi.StopJobResponse{}, nil
}

func (s *jobServer) JobAddress(ctx context.Context, req *jobapi.JobAddressRequest) (*jobapi.JobAddressResponse, error) {
	addr, err := s.b.serviceAddress(ctx, req.GetId(), int(req.GetPort()))
	switch {
	case errors.Is(err, errNoSuchJob):
		return nil, status.Error(codes.NotFound, err.Error())
	case errors.Is(err, errNotExposed):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case ctx.Err() != nil:
		return nil, status.FromContextError(ctx.Err()).Err()
	case err != nil:
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &jobapi.JobAddressResponse{Address: addr}, nil
}

func (s *jobServer) Require(ctx context.Context, req *jobapi.RequireRequest) (*jobapi.RequireResponse, error) {
	if err := s.b.require(req.GetArch()); err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	return &jobapi.RequireResponse{}, nil
}
