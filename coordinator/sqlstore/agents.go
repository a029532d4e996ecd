package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
)

// SaveAgent stores the agent, replacing what was kept under its id,
// unless that agent was removed.
func (s *Store) SaveAgent(ctx context.Context, a coordinator.Agent) error {
	if a.ID == "" {
		return errors.New("save agent: the agent has no id")
	}
	labels, err := rows.MapJSON(a.Labels)
	if err != nil {
		return fmt.Errorf("save agent %s: labels: %w", a.ID, err)
	}
	err = s.write(ctx, func(w wconn) error {
		_, err := w.stmt(s.q.saveAgent).ExecContext(w.ctx, a.ID, a.Name, labels, a.CredentialHash, a.Cordoned, rows.Nanos(a.Joined), rows.Nanos(a.LastSeen))
		return err
	})
	if err != nil {
		return fmt.Errorf("save agent %s: %w", a.ID, err)
	}
	return nil
}

// SeenAgent moves the agent's last seen time on to at (never back). An
// agent not kept is not made.
func (s *Store) SeenAgent(ctx context.Context, id string, at time.Time) error {
	err := s.write(ctx, func(w wconn) error {
		_, err := w.stmt(s.q.seenAgent).ExecContext(w.ctx, id, rows.Nanos(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("agent %s seen: %w", id, err)
	}
	return nil
}

// GetAgent returns the agent (coordinator.ErrNotFound).
func (s *Store) GetAgent(ctx context.Context, id string) (coordinator.Agent, error) {
	a, err := rows.ScanAgent(s.q.getAgent.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("agent %s: %w", id, coordinator.ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("get agent %s: %w", id, err)
	}
	return a, nil
}

// ListAgents returns every agent not removed, by name then id.
func (s *Store) ListAgents(ctx context.Context) ([]coordinator.Agent, error) {
	rs, err := s.q.listAgents.QueryContext(ctx)
	as, err := collect(rs, err, rows.ScanAgent)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return as, nil
}

// RemoveAgent marks the agent removed and forgets its credential
// (coordinator.ErrNotFound when there is none, or it was removed).
func (s *Store) RemoveAgent(ctx context.Context, id string) error {
	return s.remove(ctx, "agent "+id, s.q.removeAgent, id, rows.Nanos(s.now()))
}
