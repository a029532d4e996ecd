package coordinator_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// awayStore is a store whose agents cannot be read while away is set, as
// a database restarting.
type awayStore struct {
	coordinator.Store
	away atomic.Bool
}

func (s *awayStore) GetAgent(ctx context.Context, id string) (coordinator.Agent, error) {
	if s.away.Load() {
		return coordinator.Agent{}, errors.New("FATAL: terminating connection due to administrator command")
	}
	return s.Store.GetAgent(ctx, id)
}

// An agent that says who it is while the store is away is told to try
// again (Unavailable), not that its credential is unknown: that made it
// join anew, and its builds were lost with its old identity.
func TestAnAgentIsNotForgottenWhileTheStoreIsAway(t *testing.T) {
	var store *awayStore
	f := newFleet(t, time.Minute, func(c *coordinator.Config) {
		store = &awayStore{Store: c.Store}
		c.Store = store
	})
	first := fleettest.Dial(t, f.addr)
	w := first.Welcome(t, agentHello("", "join-secret"))
	first.Hangup(t)

	store.away.Store(true)
	again := fleettest.Dial(t, f.addr)
	again.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Hello{Hello: agentHello(w.GetId(), w.GetCredential())}})
	if _, err := again.RecvUntil(t, func(*fleet.CoordinatorMessage) bool { return true }); status.Code(err) != codes.Unavailable {
		t.Fatalf("a known agent while the store is away: %v, want Unavailable", err)
	}
	store.away.Store(false)
	back := fleettest.Dial(t, f.addr)
	if id := back.Join(t, agentHello(w.GetId(), w.GetCredential())); id != w.GetId() {
		t.Errorf("back as %q, want its own id %q", id, w.GetId())
	}
}

func agentHello(id, token string) *fleet.Hello {
	h := hello(token, fleet.ProtocolVersion_PROTOCOL_VERSION_1).GetHello()
	h.Id = id
	return h
}
