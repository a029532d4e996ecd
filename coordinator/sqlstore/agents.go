package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
)

const agentColumns = `id, name, labels, credential_hash, cordoned, joined, last_seen`

func scanAgent(row scanner) (coordinator.Agent, error) {
	var (
		a            coordinator.Agent
		labels       sql.NullString
		joined, seen int64
		cordoned     bool
	)
	if err := row.Scan(&a.ID, &a.Name, &labels, &a.CredentialHash, &cordoned, &joined, &seen); err != nil {
		return a, err
	}
	a.Cordoned, a.Joined, a.LastSeen = cordoned, fromNanos(joined), fromNanos(seen)
	var err error
	if a.Labels, err = jsonMap(labels); err != nil {
		return a, fmt.Errorf("agent %s: labels: %w", a.ID, err)
	}
	return a, nil
}

// SaveAgent stores the agent, replacing what was kept under its id.
func (s *Store) SaveAgent(ctx context.Context, a coordinator.Agent) error {
	if a.ID == "" {
		return errors.New("save agent: the agent has no id")
	}
	labels, err := mapJSON(a.Labels)
	if err != nil {
		return fmt.Errorf("save agent %s: labels: %w", a.ID, err)
	}
	err = s.write(ctx, func(w wconn) error {
		_, err := w.stmt(s.q.saveAgent).ExecContext(w.ctx, a.ID, a.Name, labels, a.CredentialHash, a.Cordoned, nanos(a.Joined), nanos(a.LastSeen))
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
		_, err := w.stmt(s.q.seenAgent).ExecContext(w.ctx, id, nanos(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("agent %s seen: %w", id, err)
	}
	return nil
}

// GetAgent returns the agent (coordinator.ErrNotFound).
func (s *Store) GetAgent(ctx context.Context, id string) (coordinator.Agent, error) {
	a, err := scanAgent(s.q.getAgent.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("agent %s: %w", id, coordinator.ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("get agent %s: %w", id, err)
	}
	return a, nil
}

// ListAgents returns every agent, by name then id.
func (s *Store) ListAgents(ctx context.Context) ([]coordinator.Agent, error) {
	rows, err := s.q.listAgents.QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var as []coordinator.Agent
	for rows.Next() {
		a, err := scanAgent(rows)
		if err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		as = append(as, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return as, nil
}

// SaveToken keeps the SHA-256 (hex) of a token with its kind; saving a hash
// again sets its kind.
func (s *Store) SaveToken(ctx context.Context, hash string, kind coordinator.TokenKind) error {
	if hash == "" || kind == "" {
		return errors.New("save token: a token needs a hash and a kind")
	}
	created := nanos(s.now())
	err := s.write(ctx, func(w wconn) error {
		_, err := w.stmt(s.q.saveToken).ExecContext(w.ctx, hash, string(kind), created)
		return err
	})
	if err != nil {
		return fmt.Errorf("save %s token: %w", kind, err)
	}
	return nil
}

// TokenKind returns the kind of the token with that hash
// (coordinator.ErrNotFound).
func (s *Store) TokenKind(ctx context.Context, hash string) (coordinator.TokenKind, error) {
	var kind string
	err := s.q.tokenKind.QueryRowContext(ctx, hash).Scan(&kind)
	if errors.Is(err, sql.ErrNoRows) {
		// The hash is not named: it is a secret's digest.
		return "", fmt.Errorf("token: %w", coordinator.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("token kind: %w", err)
	}
	return coordinator.TokenKind(kind), nil
}
