package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/coordinator/tlsca"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

const fakeToken = "s3cret"

// fakeAdmin is an admin API that records what it is asked and answers from
// its maps. A queued build starts (attempt 1) once it has been looked at,
// and a followed running build ends with result when its logs are sent.
type fakeAdmin struct {
	fleet.UnimplementedAdminServer
	mu     sync.Mutex
	auth   []string        // each call's authorization metadata
	calls  []string        // each call's method
	reqs   []proto.Message // each call's request
	agents []*fleet.AgentInfo
	builds map[string]*fleet.BuildInfo
	events map[string][]*fleet.StoredEvent
	logs   map[string][]*fleet.LogsChunk
	result string // how followed builds end
}

func newFakeAdmin() *fakeAdmin {
	return &fakeAdmin{builds: map[string]*fleet.BuildInfo{}, events: map[string][]*fleet.StoredEvent{}, logs: map[string][]*fleet.LogsChunk{}, result: "success"}
}

func (f *fakeAdmin) record(ctx context.Context, method string, req proto.Message) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth = append(f.auth, strings.Join(md.Get("authorization"), ","))
	f.calls = append(f.calls, method)
	f.reqs = append(f.reqs, proto.Clone(req))
}

// requests returns the requests of one method.
func (f *fakeAdmin) requests(method string) []proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []proto.Message
	for i, c := range f.calls {
		if c == method {
			out = append(out, f.reqs[i])
		}
	}
	return out
}

func (f *fakeAdmin) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.auth, f.calls, f.reqs = nil, nil, nil
}

// authorize is the coordinator's rule, simplified: one token for all.
func (f *fakeAdmin) authorize(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	switch v := md.Get("authorization"); {
	case len(v) != 1 || !strings.HasPrefix(v[0], "Bearer "):
		return status.Error(codes.Unauthenticated, "no token: give --token or MONKEYCI_TOKEN")
	case v[0] != "Bearer "+fakeToken:
		return status.Error(codes.Unauthenticated, "unknown token")
	}
	return nil
}

func (f *fakeAdmin) build(id string) (*fleet.BuildInfo, error) {
	b, ok := f.builds[id]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "build %q: not found", id)
	}
	return b, nil
}

func (f *fakeAdmin) Trigger(ctx context.Context, r *fleet.TriggerRequest) (*fleet.BuildInfo, error) {
	f.record(ctx, "Trigger", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	b := &fleet.BuildInfo{Id: fmt.Sprintf("b%d", len(f.builds)+100), Repo: r.GetUrl(), Url: r.GetUrl(), Branch: r.GetBranch(), Commit: r.GetCommit(), State: "queued", Created: timestamppb.Now()}
	f.builds[b.Id] = b
	return proto.CloneOf(b), nil
}

func (f *fakeAdmin) ListBuilds(ctx context.Context, r *fleet.ListBuildsRequest) (*fleet.ListBuildsResponse, error) {
	f.record(ctx, "ListBuilds", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &fleet.ListBuildsResponse{}
	for _, id := range slicesSorted(f.builds) {
		resp.Builds = append(resp.Builds, proto.CloneOf(f.builds[id]))
	}
	return resp, nil
}

func slicesSorted(m map[string]*fleet.BuildInfo) []string {
	var ids []string
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (f *fakeAdmin) GetBuild(ctx context.Context, r *fleet.GetBuildRequest) (*fleet.BuildDetail, error) {
	f.record(ctx, "GetBuild", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.build(r.GetId())
	if err != nil {
		return nil, err
	}
	d := &fleet.BuildDetail{Build: proto.CloneOf(b), Events: f.events[b.Id]}
	if b.State == "queued" {
		b.State, b.Attempt, b.Agent, b.Started = "running", b.Attempt+1, "a1", timestamppb.Now()
	}
	return d, nil
}

func (f *fakeAdmin) CancelBuild(ctx context.Context, r *fleet.BuildRef) (*fleet.BuildInfo, error) {
	f.record(ctx, "CancelBuild", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.build(r.GetId())
	if err != nil {
		return nil, err
	}
	if b.State == "ended" {
		return nil, status.Errorf(codes.FailedPrecondition, "build %s: the build has already ended", b.Id)
	}
	b.State, b.Result = "ended", "canceled"
	return proto.CloneOf(b), nil
}

func (f *fakeAdmin) RetryBuild(ctx context.Context, r *fleet.BuildRef) (*fleet.BuildInfo, error) {
	f.record(ctx, "RetryBuild", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.build(r.GetId())
	if err != nil {
		return nil, err
	}
	b.State, b.Result = "queued", ""
	return proto.CloneOf(b), nil
}

func (f *fakeAdmin) UnblockJob(ctx context.Context, r *fleet.UnblockJobRequest) (*fleet.BuildInfo, error) {
	f.record(ctx, "UnblockJob", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	b, err := f.build(r.GetBuild())
	if err != nil {
		return nil, err
	}
	if b.State != "running" {
		return nil, status.Errorf(codes.FailedPrecondition, "build %s is %s: only a running build's jobs can be unblocked", b.Id, b.State)
	}
	return proto.CloneOf(b), nil
}

func (f *fakeAdmin) Logs(r *fleet.LogsRequest, out fleet.Admin_LogsServer) error {
	f.record(out.Context(), "Logs", r)
	f.mu.Lock()
	b, err := f.build(r.GetBuild())
	var chunks []*fleet.LogsChunk
	for _, ch := range f.logs[r.GetBuild()] {
		if r.GetJob() == "" || ch.GetJob() == r.GetJob() {
			chunks = append(chunks, ch)
		}
	}
	if err == nil && r.GetFollow() && b.State == "running" {
		b.State, b.Result, b.Ended = "ended", f.result, timestamppb.New(b.Started.AsTime().Add(1500*time.Millisecond))
		if f.result != "success" {
			b.Message = "job test failed"
		}
	}
	f.mu.Unlock()
	if err != nil {
		return err
	}
	for _, ch := range chunks {
		if err := out.Send(ch); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeAdmin) ListAgents(ctx context.Context, r *fleet.ListAgentsRequest) (*fleet.ListAgentsResponse, error) {
	f.record(ctx, "ListAgents", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &fleet.ListAgentsResponse{}
	for _, a := range f.agents {
		resp.Agents = append(resp.Agents, proto.CloneOf(a))
	}
	return resp, nil
}

func (f *fakeAdmin) SetAgent(ctx context.Context, r *fleet.SetAgentRequest) (*fleet.AgentInfo, error) {
	f.record(ctx, "SetAgent", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.agents {
		if a.Id == r.GetId() || a.Name == r.GetId() {
			a.State = map[fleet.SetAgentRequest_Action]string{fleet.SetAgentRequest_CORDON: "cordoned", fleet.SetAgentRequest_UNCORDON: "ready", fleet.SetAgentRequest_DRAIN: "draining"}[r.GetAction()]
			return proto.CloneOf(a), nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "agent %q: not found", r.GetId())
}

func (f *fakeAdmin) CreateToken(ctx context.Context, r *fleet.CreateTokenRequest) (*fleet.CreateTokenResponse, error) {
	f.record(ctx, "CreateToken", r)
	return &fleet.CreateTokenResponse{Token: "tok-" + r.GetKind(), Kind: r.GetKind(), Id: "id-" + r.GetKind()}, nil
}

// serveFake serves f on a loopback port (TLS when cfg is not nil) and
// returns its address. The environment's MONKEYCI_* are cleared, and
// followers poll often.
func serveFake(t *testing.T, f *fakeAdmin, cfg *tls.Config) string {
	t.Helper()
	for _, env := range adminEnv {
		t.Setenv(env, "")
	}
	poll := logsPoll
	logsPoll = 10 * time.Millisecond
	t.Cleanup(func() { logsPoll = poll })
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if err := f.authorize(ctx); err != nil {
				return nil, err
			}
			return next(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			if err := f.authorize(ss.Context()); err != nil {
				return err
			}
			return next(srv, ss)
		}),
	}
	if cfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg)))
	}
	srv := grpc.NewServer(opts...)
	fleet.RegisterAdminServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// cli runs monkeyci in this process.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := execute(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// plain are the client flags for a plaintext fake.
func plain(addr string, args ...string) []string {
	return append(args, "--server", addr, "--tls=false", "--token", fakeToken)
}

func assertRequests(t *testing.T, f *fakeAdmin, method string, want ...proto.Message) {
	t.Helper()
	got := f.requests(method)
	if len(got) != len(want) {
		t.Fatalf("%s requests: got %v, want %v", method, got, want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("%s request %d: got %v, want %v", method, i, got[i], want[i])
		}
	}
}

func assertTokens(t *testing.T, f *fakeAdmin, want string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, a := range f.auth {
		if a != want {
			t.Errorf("call %d (%s) had authorization %q, want %q", i, f.calls[i], a, want)
		}
	}
}

func TestAdminCLIEnvironmentAndFlags(t *testing.T) {
	f := newFakeAdmin()
	f.agents = []*fleet.AgentInfo{{Id: "a1", Name: "box", State: "ready"}}
	addr := serveFake(t, f, nil)

	// the environment, when no flag is given
	t.Setenv("MONKEYCI_SERVER", addr)
	t.Setenv("MONKEYCI_TOKEN", fakeToken)
	if code, out, errOut := cli(t, "agents", "ls", "--tls=false"); code != 0 || !strings.Contains(out, "box") {
		t.Fatalf("env: exit %d\n%s%s", code, out, errOut)
	}
	assertTokens(t, f, "Bearer "+fakeToken)

	// flags win over the environment
	t.Setenv("MONKEYCI_SERVER", "127.0.0.1:1")
	t.Setenv("MONKEYCI_TOKEN", "wrong")
	f.reset()
	if code, out, errOut := cli(t, "agents", "--server", addr, "--token", fakeToken, "ls", "--tls=false"); code != 0 {
		t.Fatalf("flags: exit %d\n%s%s", code, out, errOut)
	}
	assertTokens(t, f, "Bearer "+fakeToken)

	// the wrong token from the environment: refused, exit 1, one line
	code, out, errOut := cli(t, "agents", "ls", "--server", addr, "--tls=false")
	if code != 1 || out != "" || errOut != "monkeyci: unknown token (give an admin token with --token or MONKEYCI_TOKEN)\n" {
		t.Errorf("wrong token: exit %d, %q, %q", code, out, errOut)
	}
	t.Setenv("MONKEYCI_TOKEN", "")
	code, _, errOut = cli(t, "agents", "ls", "--server", addr, "--tls=false")
	if code != 1 || errOut != "monkeyci: no token: give --token or MONKEYCI_TOKEN\n" {
		t.Errorf("no token: exit %d, %q", code, errOut)
	}
	// a CA file with --tls=false is a usage error, one from the environment is not used
	t.Setenv("MONKEYCI_CA", "/nonexistent/ca.pem")
	if code, _, errOut := cli(t, plain(addr, "agents", "ls")...); code != 0 {
		t.Errorf("MONKEYCI_CA with --tls=false: exit %d, %q", code, errOut)
	}
	if code, _, errOut := cli(t, plain(addr, "agents", "ls", "--ca", "x.pem")...); code != 2 || errOut != "monkeyci: --ca has no use with --tls=false\n" {
		t.Errorf("--ca with --tls=false: exit %d, %q", code, errOut)
	}
	if code, _, errOut := cli(t, "agents", "ls", "--server", addr, "--token", fakeToken, "--ca", "/nonexistent/ca.pem"); code != 2 || !strings.HasPrefix(errOut, "monkeyci: --ca: open /nonexistent/ca.pem") {
		t.Errorf("a missing CA file: exit %d, %q", code, errOut)
	}
	if code, _, errOut := cli(t, plain(addr, "agents", "ls", "-o", "yaml")...); code != 2 || errOut != "monkeyci: -o \"yaml\": say table or json\n" {
		t.Errorf("-o yaml: exit %d, %q", code, errOut)
	}
}

func TestAdminCLIUnreachable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	for _, env := range adminEnv {
		t.Setenv(env, "")
	}
	code, out, errOut := cli(t, plain(addr, "builds", "ls")...)
	want := "monkeyci: cannot reach the coordinator at " + addr + ": "
	if code != 1 || out != "" || !strings.HasPrefix(errOut, want) || !strings.HasSuffix(errOut, " (is it running? is --tls right?)\n") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d, %q, %q", code, out, errOut)
	}
}

func TestAdminCLITLS(t *testing.T) {
	bundle, err := tlsca.Ensure(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeAdmin()
	addr := serveFake(t, f, bundle.ServerConfig())

	code, out, errOut := cli(t, "tokens", "create", "--kind", "agent", "--server", addr, "--token", fakeToken, "--ca", bundle.CAFile())
	if code != 0 || out != "tok-agent\n" {
		t.Fatalf("with --ca: exit %d, %q, %q", code, out, errOut)
	}
	t.Setenv("MONKEYCI_CA", bundle.CAFile())
	if code, out, errOut := cli(t, "tokens", "create", "--kind", "agent", "--server", addr, "--token", fakeToken); code != 0 {
		t.Fatalf("with MONKEYCI_CA: exit %d, %q, %q", code, out, errOut)
	}
	t.Setenv("MONKEYCI_CA", "")
	code, _, errOut = cli(t, "tokens", "create", "--kind", "agent", "--server", addr, "--token", fakeToken)
	if code != 1 || !strings.Contains(errOut, "x509") || !strings.HasSuffix(errOut, "(give --ca the coordinator's CA: DATA_DIR/tls/ca.pem)\n") {
		t.Errorf("without --ca: exit %d, %q", code, errOut)
	}
	code, _, errOut = cli(t, plain(addr, "tokens", "create", "--kind", "agent")...)
	if code != 1 || !strings.HasPrefix(errOut, "monkeyci: cannot reach the coordinator at "+addr) || !strings.HasSuffix(errOut, "(is it running? is --tls right?)\n") {
		t.Errorf("plaintext to TLS: exit %d, %q", code, errOut)
	}
	assertRequests(t, f, "CreateToken", &fleet.CreateTokenRequest{Kind: "agent"}, &fleet.CreateTokenRequest{Kind: "agent"})
}

func TestAdminCLICompletion(t *testing.T) {
	code, out, errOut := cli(t, "completion", "bash")
	if code != 0 || !strings.Contains(out, "bash completion") || !strings.Contains(out, "__monkeyci_") {
		t.Fatalf("completion bash: exit %d, %d bytes, %q", code, len(out), errOut)
	}
	for _, shell := range []string{"zsh", "fish", "powershell"} {
		if code, out, _ := cli(t, "completion", shell); code != 0 || out == "" {
			t.Errorf("completion %s: exit %d", shell, code)
		}
	}

	f := newFakeAdmin()
	f.builds["b1"] = &fleet.BuildInfo{Id: "b1", Repo: "r", State: "ended", Result: "success"}
	f.agents = []*fleet.AgentInfo{{Id: "a1", Name: "box", State: "ready"}}
	addr := serveFake(t, f, nil)
	_, out, _ = cli(t, append(plain(addr, "__complete", "builds", "show"), "")...)
	if !strings.HasPrefix(out, "b1\tr ended success\n") {
		t.Errorf("build ids: %q", out)
	}
	_, out, _ = cli(t, append(plain(addr, "__complete", "agents", "cordon"), "")...)
	if !strings.HasPrefix(out, "a1\tbox ready\nbox\ta1 ready\n") {
		t.Errorf("agents: %q", out)
	}
	_, out, _ = cli(t, "__complete", "tokens", "create", "--kind", "")
	if !strings.HasPrefix(out, "agent\nadmin\nviewer\n") {
		t.Errorf("kinds: %q", out)
	}
}

// repoState replays the recorded repository and secret calls that
// succeeded: the registered repositories by name (secrets cleared, has_*
// set) and each one's secrets by key. The caller holds f.mu.
func (f *fakeAdmin) repoState() (map[string]*fleet.Repo, map[string]map[string]*fleet.SecretInfo) {
	repos, secrets := map[string]*fleet.Repo{}, map[string]map[string]*fleet.SecretInfo{}
	created := timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	for i, c := range f.calls {
		switch r := f.reqs[i].(type) {
		case *fleet.Repo:
			if c != "AddRepo" || r.GetName() == "" || r.GetUrl() == "" {
				continue
			}
			old := repos[r.GetName()]
			n := proto.CloneOf(r)
			n.HasWebhookSecret = r.GetWebhookSecret() != "" || old.GetHasWebhookSecret()
			n.HasForgeToken = r.GetForgeToken() != "" || old.GetHasForgeToken()
			n.WebhookSecret, n.ForgeToken, n.Created = "", "", created
			repos[n.Name] = n
			if secrets[n.Name] == nil {
				secrets[n.Name] = map[string]*fleet.SecretInfo{}
			}
		case *fleet.RepoRef:
			if c == "RemoveRepo" {
				delete(repos, r.GetName())
				delete(secrets, r.GetName())
			}
		case *fleet.SetSecretRequest:
			if _, ok := repos[r.GetRepo()]; ok && len(r.GetValue()) > 0 {
				secrets[r.GetRepo()][r.GetKey()] = &fleet.SecretInfo{Repo: r.GetRepo(), Key: r.GetKey(), Updated: timestamppb.New(created.AsTime().Add(time.Duration(i) * time.Minute))}
			}
		case *fleet.SecretRef:
			if s := secrets[r.GetRepo()]; s != nil {
				delete(s, r.GetKey())
			}
		}
	}
	return repos, secrets
}

func (f *fakeAdmin) AddRepo(ctx context.Context, r *fleet.Repo) (*fleet.Repo, error) {
	f.record(ctx, "AddRepo", r)
	if r.GetName() == "" || r.GetUrl() == "" {
		return nil, status.Error(codes.InvalidArgument, "a repository needs a name and a URL")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	repos, _ := f.repoState()
	return repos[r.GetName()], nil
}

func (f *fakeAdmin) ListRepos(ctx context.Context, r *fleet.ListReposRequest) (*fleet.ListReposResponse, error) {
	f.record(ctx, "ListRepos", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	repos, _ := f.repoState()
	resp := &fleet.ListReposResponse{}
	for _, r := range repos {
		resp.Repos = append(resp.Repos, r)
	}
	slices.SortFunc(resp.Repos, func(a, b *fleet.Repo) int { return strings.Compare(a.GetName(), b.GetName()) })
	return resp, nil
}

func (f *fakeAdmin) RemoveRepo(ctx context.Context, r *fleet.RepoRef) (*fleet.Repo, error) {
	f.mu.Lock()
	repos, _ := f.repoState()
	f.mu.Unlock()
	f.record(ctx, "RemoveRepo", r)
	repo, ok := repos[r.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "repository %s: not found", r.GetName())
	}
	return repo, nil
}

func (f *fakeAdmin) SetSecret(ctx context.Context, r *fleet.SetSecretRequest) (*fleet.SecretInfo, error) {
	f.record(ctx, "SetSecret", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(r.GetValue()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "the secret's value is empty (it is read from standard input)")
	}
	_, secrets := f.repoState()
	s, ok := secrets[r.GetRepo()][r.GetKey()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "repository %s: not found", r.GetRepo())
	}
	return s, nil
}

func (f *fakeAdmin) ListSecrets(ctx context.Context, r *fleet.RepoRef) (*fleet.ListSecretsResponse, error) {
	f.record(ctx, "ListSecrets", r)
	f.mu.Lock()
	defer f.mu.Unlock()
	_, secrets := f.repoState()
	s, ok := secrets[r.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "repository %s: not found", r.GetName())
	}
	resp := &fleet.ListSecretsResponse{}
	for _, si := range s {
		resp.Secrets = append(resp.Secrets, si)
	}
	slices.SortFunc(resp.Secrets, func(a, b *fleet.SecretInfo) int { return strings.Compare(a.GetKey(), b.GetKey()) })
	return resp, nil
}

func (f *fakeAdmin) RemoveSecret(ctx context.Context, r *fleet.SecretRef) (*fleet.SecretInfo, error) {
	f.mu.Lock()
	_, secrets := f.repoState()
	f.mu.Unlock()
	f.record(ctx, "RemoveSecret", r)
	if _, ok := secrets[r.GetRepo()][r.GetKey()]; !ok {
		return nil, status.Errorf(codes.NotFound, "secret %s of %s: not found", r.GetKey(), r.GetRepo())
	}
	return &fleet.SecretInfo{Repo: r.GetRepo(), Key: r.GetKey()}, nil
}
