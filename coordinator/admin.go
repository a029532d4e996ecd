package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// AdminServer serves the admin API.
type AdminServer struct {
	fleet.UnimplementedAdminServer
	c *Coordinator
}

var _ fleet.AdminServer = (*AdminServer)(nil)

// AdminServer returns the coordinator's admin API.
func (c *Coordinator) AdminServer() *AdminServer { return &AdminServer{c: c} }

// readOnly are the admin calls a viewer token may make.
var readOnly = map[string]bool{"ListBuilds": true, "GetBuild": true, "Logs": true, "ListArtifacts": true, "GetArtifact": true, "ListAgents": true, "ListRepos": true, "ListSecrets": true, "ListCoordinators": true}

// authorize checks a call's bearer token: an admin token for everything,
// a viewer token for reading. The fleet service authenticates in its Hello.
func (c *Coordinator) authorize(ctx context.Context, method string) error {
	service, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !strings.HasSuffix(service, ".Admin") {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 || !strings.HasPrefix(vals[0], "Bearer ") {
		return status.Error(codes.Unauthenticated, "no token: give --token or MONKEYCI_TOKEN")
	}
	kind, err := c.TokenKind(ctx, strings.TrimPrefix(vals[0], "Bearer "))
	switch {
	case err != nil:
		return status.Error(codes.Unauthenticated, "unknown token")
	case kind == TokenAdmin, kind == TokenViewer && readOnly[name]:
		return nil
	}
	return status.Errorf(codes.PermissionDenied, "a %s token may not call %s", kind, name)
}

// Interceptors put authorize in front of every call.
func (c *Coordinator) Interceptors() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
			if err := c.authorize(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return next(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, next grpc.StreamHandler) error {
			if err := c.authorize(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return next(srv, ss)
		}),
	}
}

func (s *AdminServer) Trigger(ctx context.Context, r *fleet.TriggerRequest) (*fleet.BuildInfo, error) {
	priority, err := ParsePriority(r.GetPriority())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	b, err := s.c.Trigger(ctx, Build{
		Repo: r.GetRepo(), Source: Source{URL: r.GetUrl(), Branch: r.GetBranch(), Commit: r.GetCommit(), Tag: r.GetTag()},
		Params: r.GetParams(), Labels: r.GetLabels(), Priority: priority, priorityAsked: r.GetPriority() != "",
	})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return buildInfo(b), nil
}

func (s *AdminServer) ListBuilds(ctx context.Context, r *fleet.ListBuildsRequest) (*fleet.ListBuildsResponse, error) {
	bs, err := s.c.cfg.Store.ListBuilds(ctx, BuildFilter{Repo: r.GetRepo(), State: State(r.GetState()), Branch: r.GetBranch(), Limit: int(r.GetLimit())})
	if err != nil {
		return nil, storeError(err)
	}
	resp := &fleet.ListBuildsResponse{}
	for _, b := range bs {
		resp.Builds = append(resp.Builds, buildInfo(b))
	}
	return resp, nil
}

func (s *AdminServer) GetBuild(ctx context.Context, r *fleet.GetBuildRequest) (*fleet.BuildDetail, error) {
	id, err := s.resolveBuild(ctx, r.GetId())
	if err != nil {
		return nil, err
	}
	b, err := s.c.cfg.Store.GetBuild(ctx, id)
	if err != nil {
		return nil, storeError(err)
	}
	evs, err := s.c.cfg.Store.Events(ctx, b.ID)
	if err != nil {
		return nil, storeError(err)
	}
	d := &fleet.BuildDetail{Build: buildInfo(b)}
	for _, e := range evs {
		body, _ := json.Marshal(e.Event)
		d.Events = append(d.Events, &fleet.StoredEvent{Attempt: int32(e.Attempt), Seq: e.Seq, Event: body})
	}
	return d, nil
}

func (s *AdminServer) CancelBuild(ctx context.Context, r *fleet.BuildRef) (*fleet.BuildInfo, error) {
	id, err := s.resolveBuild(ctx, r.GetId())
	if err != nil {
		return nil, err
	}
	if err := s.c.cancel(ctx, id, r.GetSupersededBy()); err != nil {
		return nil, storeError(err)
	}
	return s.info(ctx, id)
}

func (s *AdminServer) RetryBuild(ctx context.Context, r *fleet.BuildRef) (*fleet.BuildInfo, error) {
	id, err := s.resolveBuild(ctx, r.GetId())
	if err != nil {
		return nil, err
	}
	if err := s.c.Retry(ctx, id); err != nil {
		return nil, storeError(err)
	}
	return s.info(ctx, id)
}

func (s *AdminServer) info(ctx context.Context, id string) (*fleet.BuildInfo, error) {
	b, err := s.c.cfg.Store.GetBuild(ctx, id)
	if err != nil {
		return nil, storeError(err)
	}
	return buildInfo(b), nil
}

func (s *AdminServer) ListAgents(ctx context.Context, r *fleet.ListAgentsRequest) (*fleet.ListAgentsResponse, error) {
	if !s.c.Leading() { // the agents are connected to the leader
		return forward(ctx, s.c, func(ctx context.Context, api fleet.AdminClient) (*fleet.ListAgentsResponse, error) {
			return api.ListAgents(ctx, r)
		})
	}
	stored, err := s.c.cfg.Store.ListAgents(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	resp := &fleet.ListAgentsResponse{}
	for _, a := range stored {
		resp.Agents = append(resp.Agents, s.c.agentInfo(a))
	}
	return resp, nil
}

func (c *Coordinator) agentInfo(a Agent) *fleet.AgentInfo {
	info := &fleet.AgentInfo{Id: a.ID, Name: a.Name, Labels: a.Labels, State: "lost", LastSeen: timestamppb.New(a.LastSeen)}
	if a.Cordoned {
		info.State = "cordoned"
	}
	s, ok := c.agents.state(a.ID)
	if !ok {
		return info
	}
	switch {
	case s.draining:
		info.State = "draining"
	case s.cordoned:
		info.State = "cordoned"
	default:
		info.State = "ready"
	}
	info.MilliCpus, info.Memory = s.capacity.MilliCPUs, s.capacity.Memory
	info.FreeMilliCpus, info.FreeMemory = s.free.MilliCPUs, s.free.Memory
	info.Version = s.version
	info.LastSeen = timestamppb.New(s.seen)
	info.Builds = s.builds
	return info
}

func (s *AdminServer) SetAgent(ctx context.Context, r *fleet.SetAgentRequest) (*fleet.AgentInfo, error) {
	if !s.c.Leading() {
		return forward(ctx, s.c, func(ctx context.Context, api fleet.AdminClient) (*fleet.AgentInfo, error) {
			return api.SetAgent(ctx, r)
		})
	}
	a, err := s.c.findAgent(ctx, r.GetId())
	if err != nil {
		return nil, storeError(err)
	}
	switch r.GetAction() {
	case fleet.SetAgentRequest_CORDON, fleet.SetAgentRequest_UNCORDON:
		a.Cordoned = r.GetAction() == fleet.SetAgentRequest_CORDON
		if err := s.c.cfg.Store.SaveAgent(ctx, a); err != nil {
			return nil, storeError(err)
		}
		s.c.agents.cordon(a.ID, a.Cordoned)
		s.c.poke()
	case fleet.SetAgentRequest_DRAIN: // drainAgent pokes the dispatcher itself
		if err := s.c.drainAgent(a.ID); err != nil {
			return nil, status.Errorf(codes.FailedPrecondition, "agent %s is not connected", a.Name)
		}
	default:
		return nil, status.Error(codes.InvalidArgument, "say cordon, uncordon or drain")
	}
	return s.c.agentInfo(a), nil
}

// findAgent finds an agent by id or name.
func (c *Coordinator) findAgent(ctx context.Context, idOrName string) (Agent, error) {
	if a, err := c.cfg.Store.GetAgent(ctx, idOrName); err == nil && a.Removed.IsZero() {
		return a, nil
	}
	all, err := c.cfg.Store.ListAgents(ctx)
	if err != nil {
		return Agent{}, err
	}
	var found []Agent
	for _, a := range all {
		if a.Name == idOrName {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return Agent{}, fmt.Errorf("agent %q: %w", idOrName, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return Agent{}, status.Errorf(codes.FailedPrecondition, "%d agents are named %q: name one by its id", len(found), idOrName)
}

func buildInfo(b Build) *fleet.BuildInfo {
	info := &fleet.BuildInfo{
		Id: b.ID, Repo: b.Repo, Url: source.Redact(b.Source.URL), Branch: b.Source.Branch, Commit: b.Source.Commit,
		State: string(b.State), Result: string(b.Result), Message: b.Message, Attempt: int32(b.Attempt),
		Agent: b.Agent, Waiting: b.Waiting, Created: timestamppb.New(b.Created), Trigger: b.Trigger,
		PullRequest: int32(b.PullRequest), CacheScope: b.Cache.Scope, CacheFallback: b.Cache.Fallback,
		Priority: b.Priority.String(),
	}
	if !b.Started.IsZero() {
		info.Started = timestamppb.New(b.Started)
	}
	if !b.Ended.IsZero() {
		info.Ended = timestamppb.New(b.Ended)
	}
	for n, why := range b.AttemptReasons {
		if info.AttemptReasons == nil {
			info.AttemptReasons = map[int32]string{}
		}
		info.AttemptReasons[int32(n)] = why
	}
	return info
}

func storeError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, ErrNotFound) {
		return status.Error(codes.NotFound, err.Error())
	}
	if errors.Is(err, ErrStale) || errors.Is(err, ErrEnded) {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
