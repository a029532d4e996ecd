package coordinator_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Every call of the admin API, the ones added after this test too, is
// refused without a token, with an unknown one or an agent's, and to a
// viewer unless it only reads. The calls are made with an empty request: the
// refusal comes before the request is read.
func TestEveryAdminCallNeedsTheRightToken(t *testing.T) {
	f := newFleet(t, time.Minute)
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	api := fleet.NewAdminClient(conn)
	viewer, err := api.CreateToken(as("admin-secret"), &fleet.CreateTokenRequest{Kind: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	agent, err := api.CreateToken(as("admin-secret"), &fleet.CreateTokenRequest{Kind: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	// What a viewer may call: reading, never changing or minting anything.
	reads := map[string]bool{"ListBuilds": true, "GetBuild": true, "Logs": true, "ListArtifacts": true, "GetArtifact": true, "ListAgents": true, "ListRepos": true, "ListSecrets": true, "ListCoordinators": true}

	call := func(ctx context.Context, method string, streaming bool) error {
		full := "/" + fleet.Admin_ServiceDesc.ServiceName + "/" + method
		if !streaming {
			return conn.Invoke(ctx, full, &emptypb.Empty{}, &emptypb.Empty{})
		}
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, full)
		if err != nil {
			return err
		}
		if err := s.SendMsg(&emptypb.Empty{}); err != nil {
			return err
		}
		if err := s.CloseSend(); err != nil {
			return err
		}
		return s.RecvMsg(&emptypb.Empty{})
	}
	type method struct {
		name      string
		streaming bool
	}
	var methods []method
	for _, m := range fleet.Admin_ServiceDesc.Methods {
		methods = append(methods, method{m.MethodName, false})
	}
	for _, s := range fleet.Admin_ServiceDesc.Streams {
		methods = append(methods, method{s.StreamName, true})
	}
	if len(methods) < 15 {
		t.Fatalf("the admin service has %d calls: the descriptor was not read", len(methods))
	}
	for _, m := range methods {
		t.Run(m.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			type refusal struct {
				ctx  context.Context
				code codes.Code
			}
			refused := map[string]refusal{
				"no token":      {ctx, codes.Unauthenticated},
				"unknown token": {as("not-a-token"), codes.Unauthenticated},
				"agent token":   {as(agent.GetToken()), codes.PermissionDenied},
			}
			if !reads[m.name] {
				refused["viewer token"] = refusal{as(viewer.GetToken()), codes.PermissionDenied}
			}
			for who, want := range refused {
				cctx, ccancel := context.WithTimeout(want.ctx, 10*time.Second)
				err := call(cctx, m.name, m.streaming)
				ccancel()
				if status.Code(err) != want.code {
					t.Errorf("%s: %v, want %s", who, err, want.code)
				}
			}
			if reads[m.name] {
				cctx, ccancel := context.WithTimeout(as(viewer.GetToken()), 10*time.Second)
				err := call(cctx, m.name, m.streaming)
				ccancel()
				if c := status.Code(err); c == codes.Unauthenticated || c == codes.PermissionDenied {
					t.Errorf("a viewer reading: %v, want the call served", err)
				}
			}
		})
	}
}
