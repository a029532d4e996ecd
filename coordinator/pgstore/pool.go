package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/pool"
)

// LoadPool returns the pool scaler's saved state (empty before the first
// save).
func (s *Store) LoadPool(ctx context.Context) (pool.State, error) {
	var st pool.State
	var doc string
	err := s.db.QueryRow(ctx, `SELECT state FROM pool_state WHERE id = 1`).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("load pool state: %w", err)
	}
	if err := json.Unmarshal([]byte(doc), &st); err != nil {
		return st, fmt.Errorf("load pool state: %w", err)
	}
	return st, nil
}

// SavePool replaces the pool scaler's state.
func (s *Store) SavePool(ctx context.Context, st pool.State) error {
	doc, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save pool state: %w", err)
	}
	// The scaler runs on the leader: a leader whose term is over saves
	// nothing over its successor's state.
	fence, args := s.fence().clause([]any{string(doc), time.Now().UnixNano()})
	q := `INSERT INTO pool_state (id, state, updated) SELECT 1, $1::text, $2::bigint WHERE true` + fence
	n, err := s.exec(ctx, q+` ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated = excluded.updated`, args...)
	if err == nil && n == 0 {
		err = coordinator.ErrNotLeader
	}
	if err != nil {
		return fmt.Errorf("save pool state: %w", err)
	}
	return nil
}
