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

// SaveToken keeps a token's hash with its kind and expiry; saving a hash
// again sets its kind and expiry. Its creation time is now.
func (s *Store) SaveToken(ctx context.Context, t coordinator.Token) error {
	if len(t.Hash) < coordinator.TokenIDLen || t.Kind == "" {
		return errors.New("save token: a token needs a hash and a kind")
	}
	_, err := s.exec(ctx, `INSERT INTO tokens (hash, id, kind, created, expires) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (hash) DO UPDATE SET kind = excluded.kind, expires = excluded.expires`,
		t.Hash, t.ID(), string(t.Kind), rows.Nanos(s.now()), rows.Nanos(t.Expires))
	if err != nil {
		return fmt.Errorf("save %s token: %w", t.Kind, err)
	}
	return nil
}

// GetToken returns the token with that hash (coordinator.ErrNotFound).
func (s *Store) GetToken(ctx context.Context, hash string) (coordinator.Token, error) {
	t, err := rows.ScanToken(s.db.QueryRow(ctx, `SELECT `+rows.TokenColumns+` FROM tokens WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
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
	return s.tokens(ctx, `SELECT `+rows.TokenColumns+` FROM tokens WHERE id >= $1 AND starts_with(id, $1) ORDER BY id`, prefix)
}

// ListTokens returns every token, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]coordinator.Token, error) {
	return s.tokens(ctx, `SELECT `+rows.TokenColumns+` FROM tokens ORDER BY created, hash`)
}

func (s *Store) tokens(ctx context.Context, sql string, args ...any) ([]coordinator.Token, error) {
	rs, err := s.db.Query(ctx, sql, args...)
	ts, err := collect(rs, err, rows.ScanToken)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken forgets the token with that hash: it is refused from then
// on (coordinator.ErrNotFound).
func (s *Store) RevokeToken(ctx context.Context, hash string) error {
	return s.remove(ctx, "token", `DELETE FROM tokens WHERE hash = $1`, hash)
}

// TokenUsed records when the token was last used.
func (s *Store) TokenUsed(ctx context.Context, hash string, at time.Time) error {
	if _, err := s.exec(ctx, `UPDATE tokens SET last_used = $2 WHERE hash = $1`, hash, rows.Nanos(at)); err != nil {
		return fmt.Errorf("token used: %w", err)
	}
	return nil
}
