package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	_, err = s.exec(ctx, `INSERT INTO agents (`+rows.AgentColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, 0)
		ON CONFLICT (id) DO UPDATE SET name = excluded.name, labels = excluded.labels,
			credential_hash = excluded.credential_hash, cordoned = excluded.cordoned,
			joined = excluded.joined, last_seen = excluded.last_seen WHERE agents.removed = 0`,
		a.ID, a.Name, labels, a.CredentialHash, a.Cordoned, rows.Nanos(a.Joined), rows.Nanos(a.LastSeen))
	if err != nil {
		return fmt.Errorf("save agent %s: %w", a.ID, err)
	}
	return nil
}

// SeenAgent moves the agent's last seen time on to at (never back). An
// agent not kept is not made.
func (s *Store) SeenAgent(ctx context.Context, id string, at time.Time) error {
	if _, err := s.exec(ctx, `UPDATE agents SET last_seen = $2 WHERE id = $1 AND last_seen < $2`, id, rows.Nanos(at)); err != nil {
		return fmt.Errorf("agent %s seen: %w", id, err)
	}
	return nil
}

// GetAgent returns the agent (coordinator.ErrNotFound).
func (s *Store) GetAgent(ctx context.Context, id string) (coordinator.Agent, error) {
	a, err := rows.ScanAgent(s.db.QueryRow(ctx, `SELECT `+rows.AgentColumns+` FROM agents WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("agent %s: %w", id, coordinator.ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("get agent %s: %w", id, err)
	}
	return a, nil
}

// ListAgents returns every agent not removed, by name then id.
func (s *Store) ListAgents(ctx context.Context) ([]coordinator.Agent, error) {
	rs, err := s.db.Query(ctx, `SELECT `+rows.AgentColumns+` FROM agents WHERE removed = 0 ORDER BY name, id`)
	as, err := collect(rs, err, rows.ScanAgent)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return as, nil
}

// RemoveAgent marks the agent removed and forgets its credential
// (coordinator.ErrNotFound when there is none, or it was removed).
func (s *Store) RemoveAgent(ctx context.Context, id string) error {
	return s.remove(ctx, "agent "+id, `UPDATE agents SET removed = $2, credential_hash = '' WHERE id = $1 AND removed = 0`,
		id, rows.Nanos(s.now()))
}
