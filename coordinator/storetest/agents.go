package storetest

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
)

func agents(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	a1 := coordinator.Agent{ID: "id1", Name: "zeta", Labels: map[string]string{"os": "linux"}, CredentialHash: "h1", Joined: t0, LastSeen: t0.Add(time.Second)}
	a2 := coordinator.Agent{ID: "id2", Name: "alpha", Joined: t0}
	must(t, s.SaveAgent(ctx, a1))
	must(t, s.SaveAgent(ctx, a2))
	if got, err := s.GetAgent(ctx, "id1"); err != nil || !reflect.DeepEqual(got, a1) {
		t.Errorf("GetAgent = %+v, %v; want %+v", got, err, a1)
	}
	a1.Cordoned, a1.LastSeen, a1.Labels = true, t0.Add(time.Hour), nil
	must(t, s.SaveAgent(ctx, a1))
	if got, err := s.GetAgent(ctx, "id1"); err != nil || !reflect.DeepEqual(got, a1) {
		t.Errorf("GetAgent after an update = %+v, %v; want %+v", got, err, a1)
	}
	as, err := s.ListAgents(ctx)
	must(t, err)
	if !reflect.DeepEqual(as, []coordinator.Agent{a2, a1}) {
		t.Errorf("ListAgents = %+v", as)
	}
	if _, err := s.GetAgent(ctx, "nope"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("GetAgent of a missing agent: %v", err)
	}
	if err := s.SaveAgent(ctx, coordinator.Agent{}); err == nil {
		t.Error("an agent without an id was saved")
	}
}

func tokens(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	admin := coordinator.Token{Hash: "aaaa1111bbbb2222", Kind: coordinator.TokenAdmin}
	agent := coordinator.Token{Hash: "aaaa1111cccc3333", Kind: coordinator.TokenAgent, Expires: t0.Add(time.Hour)}
	must(t, s.SaveToken(ctx, admin))
	must(t, s.SaveToken(ctx, agent))
	for _, want := range []coordinator.Token{admin, agent} {
		got, err := s.GetToken(ctx, want.Hash)
		if err != nil || got.Kind != want.Kind || !got.Expires.Equal(want.Expires) || got.Created.IsZero() || !got.LastUsed.IsZero() {
			t.Errorf("GetToken(%s) = %+v, %v; want %+v", want.Hash, got, err, want)
		}
	}
	agent.Kind = coordinator.TokenViewer
	must(t, s.SaveToken(ctx, agent))
	if got, _ := s.GetToken(ctx, agent.Hash); got.Kind != coordinator.TokenViewer {
		t.Errorf("saving a hash again did not set its kind: %s", got.Kind)
	}
	must(t, s.TokenUsed(ctx, admin.Hash, t0))
	if got, _ := s.GetToken(ctx, admin.Hash); !got.LastUsed.Equal(t0) {
		t.Errorf("last used = %v, want %v", got.LastUsed, t0)
	}

	for prefix, want := range map[string]int{"aaaa": 2, "aaaa1111b": 1, "aaaa1111cccc": 1, "aaaa1111cccc3": 0, "b": 0, "": 2} {
		if ts, err := s.TokensByID(ctx, prefix); err != nil || len(ts) != want {
			t.Errorf("TokensByID(%q) = %d tokens, %v; want %d", prefix, len(ts), err, want)
		}
	}
	if ts, _ := s.ListTokens(ctx); len(ts) != 2 || ts[0].ID() != "aaaa1111bbbb" {
		t.Errorf("ListTokens = %+v", ts)
	}

	must(t, s.RevokeToken(ctx, admin.Hash))
	if _, err := s.GetToken(ctx, admin.Hash); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("GetToken of a revoked token: %v", err)
	}
	if err := s.RevokeToken(ctx, admin.Hash); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("revoking again: %v", err)
	}

	_, err := s.GetToken(ctx, "secret-digest")
	if !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("GetToken of an unknown hash: %v", err)
	}
	if strings.Contains(err.Error(), "secret-digest") {
		t.Errorf("the error shows the token's hash: %v", err)
	}
	if err := s.SaveToken(ctx, coordinator.Token{Kind: coordinator.TokenAdmin}); err == nil {
		t.Error("a token without a hash was saved")
	}
}

func removeAgent(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	a := coordinator.Agent{ID: "ag", Name: "box", CredentialHash: "h"}
	must(t, s.SaveAgent(ctx, a))
	must(t, s.RemoveAgent(ctx, "ag"))
	// A save that raced the removal (a Hello's) does not bring it back.
	must(t, s.SaveAgent(ctx, a))
	if got, err := s.GetAgent(ctx, "ag"); err != nil || got.Removed.IsZero() || got.CredentialHash != "" {
		t.Errorf("GetAgent of a removed agent: %+v, %v; want it removed, without its credential", got, err)
	}
	if as, _ := s.ListAgents(ctx); len(as) != 0 {
		t.Errorf("ListAgents lists a removed agent: %+v", as)
	}
	if err := s.RemoveAgent(ctx, "ag"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("removing again: %v", err)
	}
}
