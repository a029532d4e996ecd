package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
)

// SaveAgent keeps an agent, unless it was removed: then nothing changes.
func (s *Store) SaveAgent(ctx context.Context, a coordinator.Agent) error {
	if a.ID == "" {
		return errors.New("save agent: the agent has no id")
	}
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("save agent %s: %w", a.ID, err)
	}
	defer s.mu.Unlock()
	if old, ok := s.agents[a.ID]; ok && !old.Removed.IsZero() {
		return nil
	}
	a.Labels, a.Removed = cloneMap(a.Labels), time.Time{}
	a.Joined, a.LastSeen = stamp(a.Joined), stamp(a.LastSeen)
	s.agents[a.ID] = a
	return nil
}

// SeenAgent moves a kept agent's last seen time on to at (never back).
func (s *Store) SeenAgent(ctx context.Context, id string, at time.Time) error {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("agent %s seen: %w", id, err)
	}
	defer s.mu.Unlock()
	if a, ok := s.agents[id]; ok && a.LastSeen.Before(stamp(at)) {
		a.LastSeen = stamp(at)
		s.agents[id] = a
	}
	return nil
}

// GetAgent returns an agent, removed or not (coordinator.ErrNotFound).
func (s *Store) GetAgent(ctx context.Context, id string) (coordinator.Agent, error) {
	if err := s.lock(ctx); err != nil {
		return coordinator.Agent{}, fmt.Errorf("get agent %s: %w", id, err)
	}
	defer s.mu.Unlock()
	a, ok := s.agents[id]
	if !ok {
		return a, fmt.Errorf("agent %s: %w", id, coordinator.ErrNotFound)
	}
	a.Labels = cloneMap(a.Labels)
	return a, nil
}

// ListAgents returns the agents not removed, by name then id.
func (s *Store) ListAgents(ctx context.Context) ([]coordinator.Agent, error) {
	if err := s.lock(ctx); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	var out []coordinator.Agent
	for _, a := range s.agents {
		if a.Removed.IsZero() {
			a.Labels = cloneMap(a.Labels)
			out = append(out, a)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b coordinator.Agent) int { return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID)) })
	return out, nil
}

// RemoveAgent marks an agent removed and forgets its credential.
func (s *Store) RemoveAgent(ctx context.Context, id string) error {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("remove agent %s: %w", id, err)
	}
	defer s.mu.Unlock()
	a, ok := s.agents[id]
	if !ok || !a.Removed.IsZero() {
		return fmt.Errorf("remove agent %s: %w", id, coordinator.ErrNotFound)
	}
	a.Removed, a.CredentialHash = stamp(s.now()), ""
	s.agents[id] = a
	return nil
}

// SaveToken keeps a token's hash with its kind and expiry; saving a hash
// again sets its kind and expiry. Its creation time is now.
func (s *Store) SaveToken(ctx context.Context, t coordinator.Token) error {
	if len(t.Hash) < coordinator.TokenIDLen || t.Kind == "" {
		return errors.New("save token: a token needs a hash and a kind")
	}
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("save %s token: %w", t.Kind, err)
	}
	defer s.mu.Unlock()
	if old, ok := s.tokens[t.Hash]; ok {
		old.Kind, old.Expires = t.Kind, stamp(t.Expires)
		s.tokens[t.Hash] = old
		return nil
	}
	s.tokens[t.Hash] = coordinator.Token{Hash: t.Hash, Kind: t.Kind, Created: stamp(s.now()), Expires: stamp(t.Expires)}
	return nil
}

// GetToken returns the token with that hash (coordinator.ErrNotFound).
func (s *Store) GetToken(ctx context.Context, hash string) (coordinator.Token, error) {
	if err := s.lock(ctx); err != nil {
		return coordinator.Token{}, fmt.Errorf("get token: %w", err)
	}
	defer s.mu.Unlock()
	t, ok := s.tokens[hash]
	if !ok {
		// The hash is not named: it is a secret's digest.
		return t, fmt.Errorf("token: %w", coordinator.ErrNotFound)
	}
	return t, nil
}

// TokensByID returns the tokens whose short id starts with prefix, by id.
func (s *Store) TokensByID(ctx context.Context, prefix string) ([]coordinator.Token, error) {
	ts, err := s.listTokens(ctx, func(t coordinator.Token) bool { return strings.HasPrefix(t.ID(), prefix) })
	slices.SortFunc(ts, func(a, b coordinator.Token) int { return cmp.Compare(a.ID(), b.ID()) })
	return ts, err
}

// ListTokens returns every token, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]coordinator.Token, error) {
	ts, err := s.listTokens(ctx, func(coordinator.Token) bool { return true })
	slices.SortFunc(ts, func(a, b coordinator.Token) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.Hash, b.Hash))
	})
	return ts, err
}

func (s *Store) listTokens(ctx context.Context, match func(coordinator.Token) bool) ([]coordinator.Token, error) {
	if err := s.lock(ctx); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer s.mu.Unlock()
	var out []coordinator.Token
	for _, t := range s.tokens {
		if match(t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// RevokeToken forgets the token with that hash (coordinator.ErrNotFound).
func (s *Store) RevokeToken(ctx context.Context, hash string) error {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("remove token: %w", err)
	}
	defer s.mu.Unlock()
	if _, ok := s.tokens[hash]; !ok {
		return fmt.Errorf("remove token: %w", coordinator.ErrNotFound)
	}
	delete(s.tokens, hash)
	return nil
}

// TokenUsed records when the token was last used.
func (s *Store) TokenUsed(ctx context.Context, hash string, at time.Time) error {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("token used: %w", err)
	}
	defer s.mu.Unlock()
	if t, ok := s.tokens[hash]; ok {
		t.LastUsed = stamp(at)
		s.tokens[hash] = t
	}
	return nil
}
