package coordinator

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// errRemoved ends the stream of a removed agent, and refuses its
// credential after. PermissionDenied, not Unauthenticated: the agent is
// known and refused, so it must not take it for a lost credential and
// join again.
var errRemoved = status.Error(codes.PermissionDenied, "this agent was removed by an admin (monkeyci agents rm): its credential is revoked")

// RemoveAgent revokes an agent's credential and ends its stream at once.
// Its builds go back to the queue as a lost agent's do.
func (s *AdminServer) RemoveAgent(ctx context.Context, r *fleet.AgentRef) (*fleet.AgentInfo, error) {
	if !s.c.Leading() { // its stream is the leader's to end
		return forward(ctx, s.c, func(ctx context.Context, api fleet.AdminClient) (*fleet.AgentInfo, error) {
			return api.RemoveAgent(ctx, r)
		})
	}
	a, err := s.c.findAgent(ctx, r.GetId())
	if err != nil {
		return nil, storeError(err)
	}
	info := s.c.agentInfo(a)
	if err := s.c.removeAgent(ctx, a.ID); err != nil {
		return nil, storeError(err)
	}
	info.State = "removed"
	return info, nil
}

// removeAgent marks the agent removed and ends its connection. Marked in
// memory first, under the lock register takes: a Hello admitted at the
// same moment either finds it marked or is found connected and ended.
func (c *Coordinator) removeAgent(ctx context.Context, id string) error {
	conn := c.agents.remove(id)
	if err := c.cfg.Store.RemoveAgent(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if conn != nil {
		conn.revoke()
	}
	c.log.Info("agent removed", "agent", id)
	return nil
}
