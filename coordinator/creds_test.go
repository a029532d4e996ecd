package coordinator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"

	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// refusedWithin is the promise: a revoked credential is refused within a
// second of its revocation. Revocation acts on the next call, so the
// measured figure is the time of one call; a second leaves a loaded
// machine a wide margin.
const refusedWithin = time.Second

// A made admin token works, is listed by its short id (never itself) with
// its last use, and once revoked the very next call with it is refused.
func TestARevokedAdminTokenIsRefusedWithinASecond(t *testing.T) {
	f := newFleet(t, time.Minute)
	api := adminAPI(t, f)
	root := as("admin-secret")
	made, err := api.CreateToken(root, &fleet.CreateTokenRequest{Kind: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	other := as(made.GetToken())
	if _, err := api.ListBuilds(other, &fleet.ListBuildsRequest{}); err != nil {
		t.Fatalf("the made token was refused before its revocation: %v", err)
	}
	ls, err := api.ListTokens(root, &fleet.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if text := prototext.Format(ls); strings.Contains(text, made.GetToken()) || strings.Contains(text, "admin-secret") || strings.Contains(text, "join-secret") {
		t.Errorf("tokens ls shows a token:\n%s", text)
	}
	var listed *fleet.TokenInfo
	for _, ti := range ls.GetTokens() {
		if ti.GetId() == made.GetId() {
			listed = ti
		}
	}
	if listed == nil || listed.GetKind() != "admin" || listed.GetCreated() == nil || listed.GetLastUsed() == nil || listed.GetCoordinator() {
		t.Fatalf("the made token is not listed with its kind, creation and last use: %v", ls.GetTokens())
	}

	if _, err := api.RevokeToken(root, &fleet.TokenRef{Id: made.GetId()}); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	_, err = api.ListBuilds(other, &fleet.ListBuildsRequest{})
	took := time.Since(revoked)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("the first call after the revocation: %v, want Unauthenticated", err)
	}
	if took > refusedWithin {
		t.Errorf("refused %s after the revocation, want within %s", took, refusedWithin)
	}
	t.Logf("refused %s after the revocation", took)
	if _, err := api.RevokeToken(root, &fleet.TokenRef{Id: made.GetId()}); status.Code(err) != codes.NotFound {
		t.Errorf("revoking again: %v, want NotFound", err)
	}
}

// What cannot be revoked says why; a viewer may not list or revoke.
func TestRevokingTheWrongThingSaysWhy(t *testing.T) {
	f := newFleet(t, time.Minute)
	api := adminAPI(t, f)
	root := as("admin-secret")
	viewer, err := api.CreateToken(root, &fleet.CreateTokenRequest{Kind: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := api.ListTokens(root, &fleet.ListTokensRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var own []string
	for _, ti := range ls.GetTokens() {
		if ti.GetCoordinator() {
			own = append(own, ti.GetId())
		}
	}
	if len(own) != 2 {
		t.Fatalf("the coordinator's own admin and join tokens are not listed: %v", ls.GetTokens())
	}
	for _, c := range []struct {
		id   string
		code codes.Code
		says string
	}{
		{own[0], codes.FailedPrecondition, "coordinator's own"},
		{"abc", codes.InvalidArgument, "at least 4"},
		{"0123456789abcdef", codes.InvalidArgument, "12 hex digits"},
		{"ffffffffffff", codes.NotFound, "not found"},
	} {
		_, err := api.RevokeToken(root, &fleet.TokenRef{Id: c.id})
		if status.Code(err) != c.code || !strings.Contains(err.Error(), c.says) {
			t.Errorf("revoke %q: %v, want %s saying %q", c.id, err, c.code, c.says)
		}
	}
	for name, call := range map[string]func(context.Context) error{
		"ListTokens": func(ctx context.Context) error { _, err := api.ListTokens(ctx, &fleet.ListTokensRequest{}); return err },
		"RevokeToken": func(ctx context.Context) error {
			_, err := api.RevokeToken(ctx, &fleet.TokenRef{Id: viewer.GetId()})
			return err
		},
		"RemoveAgent": func(ctx context.Context) error { _, err := api.RemoveAgent(ctx, &fleet.AgentRef{Id: "x"}); return err },
	} {
		if err := call(as(viewer.GetToken())); status.Code(err) != codes.PermissionDenied {
			t.Errorf("a viewer's %s: %v, want PermissionDenied", name, err)
		}
	}
	if _, err := api.CreateToken(root, &fleet.CreateTokenRequest{Kind: "agent", TtlSeconds: -5}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a negative ttl: %v, want InvalidArgument", err)
	}
}

// A join token made with a ttl joins agents until it expires, then no
// more; the expiry is listed.
func TestAJoinTokenExpires(t *testing.T) {
	f := newFleet(t, time.Minute)
	api := adminAPI(t, f)
	root := as("admin-secret")
	long, err := api.CreateToken(root, &fleet.CreateTokenRequest{Kind: "agent", TtlSeconds: 3600})
	if err != nil {
		t.Fatal(err)
	}
	if until := time.Until(long.GetExpires().AsTime()); until < 59*time.Minute || until > time.Hour {
		t.Errorf("a token of an hour expires in %s", until)
	}
	fleettest.Dial(t, f.addr).Join(t, fleettest.Hello("early", long.GetToken(), &fleet.Capacity{MilliCpus: 1000, Memory: 1 << 30}))

	short, err := api.CreateToken(root, &fleet.CreateTokenRequest{Kind: "agent", TtlSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	expires := short.GetExpires().AsTime()
	wait.For(t, "a join token of a second to be refused once it expired", func() bool {
		a := fleettest.Dial(t, f.addr)
		a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Hello{Hello: fleettest.Hello("late", short.GetToken(), &fleet.Capacity{})}})
		_, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetWelcome() != nil })
		if err == nil {
			return false
		}
		if status.Code(err) != codes.Unauthenticated {
			t.Fatalf("an expired join token: %v, want Unauthenticated", err)
		}
		if now := time.Now(); now.Before(expires) {
			t.Fatalf("the join token was refused at %s, before it expired at %s", now, expires)
		}
		return true
	})
}

// agents rm ends the agent's stream at once and refuses its credential
// from then on.
func TestARemovedAgentIsCutOffAndRefusedWithinASecond(t *testing.T) {
	f := newFleet(t, time.Minute)
	api := adminAPI(t, f)
	root := as("admin-secret")
	a := fleettest.Dial(t, f.addr)
	a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Hello{Hello: fleettest.Hello("doomed", "join-secret", &fleet.Capacity{MilliCpus: 1000, Memory: 1 << 30})}})
	m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetWelcome() != nil })
	if err != nil {
		t.Fatal(err)
	}
	id, credential := m.GetWelcome().GetId(), m.GetWelcome().GetCredential()
	waitAgentState(t, api, root, id, "ready")

	info, err := api.RemoveAgent(root, &fleet.AgentRef{Id: "doomed"})
	if err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	if info.GetId() != id || info.GetState() != "removed" {
		t.Errorf("agents rm answered %v", info)
	}
	_, err = a.RecvUntil(t, func(*fleet.CoordinatorMessage) bool { return false })
	took := time.Since(removed)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "removed") {
		t.Errorf("the removed agent's stream ended with %v, want PermissionDenied saying it was removed", err)
	}
	if took > refusedWithin {
		t.Errorf("the stream ended %s after the removal, want within %s", took, refusedWithin)
	}
	t.Logf("the stream ended %s after the removal", took)

	again := fleettest.Dial(t, f.addr)
	h := fleettest.Hello("doomed", credential, &fleet.Capacity{MilliCpus: 1000, Memory: 1 << 30})
	h.Id = id
	again.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Hello{Hello: h}})
	if _, err := again.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetWelcome() != nil }); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "removed") {
		t.Errorf("the removed agent's credential: %v, want PermissionDenied saying it was removed", err)
	}
	agents, err := api.ListAgents(root, &fleet.ListAgentsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(agents.GetAgents()) != 0 {
		t.Errorf("a removed agent is still listed: %v", agents.GetAgents())
	}
	if _, err := api.RemoveAgent(root, &fleet.AgentRef{Id: "doomed"}); status.Code(err) != codes.NotFound {
		t.Errorf("removing it again: %v, want NotFound", err)
	}
}

func waitAgentState(t *testing.T, api fleet.AdminClient, ctx context.Context, id, state string) {
	t.Helper()
	wait.For(t, fmt.Sprintf("agent %s to be %s", id, state), func() bool {
		agents, err := api.ListAgents(ctx, &fleet.ListAgentsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range agents.GetAgents() {
			if a.GetId() == id && a.GetState() == state {
				return true
			}
		}
		return false
	})
}
