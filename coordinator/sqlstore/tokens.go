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

// SaveToken keeps a token's hash with its kind and expiry; saving a hash
// again sets its kind and expiry. Its creation time is now.
func (s *Store) SaveToken(ctx context.Context, t coordinator.Token) error {
	if len(t.Hash) < coordinator.TokenIDLen || t.Kind == "" {
		return errors.New("save token: a token needs a hash and a kind")
	}
	created := rows.Nanos(s.now())
	err := s.write(ctx, func(w wconn) error {
		_, err := w.stmt(s.q.saveToken).ExecContext(w.ctx, t.Hash, t.ID(), string(t.Kind), created, rows.Nanos(t.Expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("save %s token: %w", t.Kind, err)
	}
	return nil
}

// GetToken returns the token with that hash (coordinator.ErrNotFound).
func (s *Store) GetToken(ctx context.Context, hash string) (coordinator.Token, error) {
	t, err := rows.ScanToken(s.q.getToken.QueryRowContext(ctx, hash))
	if errors.Is(err, sql.ErrNoRows) {
		// The hash is not named: it is a secret's digest.
		return t, fmt.Errorf("token: %w", coordinator.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("get token: %w", err)
	}
	return t, nil
}

// TokensByID returns the tokens whose id starts with prefix.
func (s *Store) TokensByID(ctx context.Context, prefix string) ([]coordinator.Token, error) {
	return s.tokens(ctx, s.q.tokensByID, prefix)
}

// ListTokens returns every token, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]coordinator.Token, error) {
	return s.tokens(ctx, s.q.listTokens)
}

func (s *Store) tokens(ctx context.Context, st *sql.Stmt, args ...any) ([]coordinator.Token, error) {
	rs, err := st.QueryContext(ctx, args...)
	ts, err := collect(rs, err, rows.ScanToken)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken forgets the token with that hash: it is refused from then
// on (coordinator.ErrNotFound).
func (s *Store) RevokeToken(ctx context.Context, hash string) error {
	return s.remove(ctx, "token", s.q.revokeToken, hash)
}

// TokenUsed records when the token was last used.
func (s *Store) TokenUsed(ctx context.Context, hash string, at time.Time) error {
	err := s.write(ctx, func(w wconn) error {
		_, err := w.stmt(s.q.tokenUsed).ExecContext(w.ctx, hash, rows.Nanos(at))
		return err
	})
	if err != nil {
		return fmt.Errorf("token used: %w", err)
	}
	return nil
}
