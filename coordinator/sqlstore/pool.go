package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/pool"
)

// LoadPool returns the pool scaler's saved state (empty before the first
// save).
func (s *Store) LoadPool(ctx context.Context) (pool.State, error) {
	var st pool.State
	var doc string
	err := s.q.getPool.QueryRowContext(ctx).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
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
	err = s.write(ctx, func(w wconn) error {
		_, err := w.stmt(s.q.savePool).ExecContext(w.ctx, string(doc), time.Now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("save pool state: %w", err)
	}
	return nil
}
