package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
)

// SaveRepo adds a repository or replaces its settings; its secrets stay,
// and so do a webhook secret and a forge token not given again. A URL
// credential not given again stays only while the URL does (else a new
// URL's host would be sent the old host's credential).
func (s *Store) SaveRepo(ctx context.Context, r coordinator.Repo) error {
	if r.Name == "" || r.URL == "" {
		return errors.New("save repository: a name and a URL are required")
	}
	branches, err := rows.ListJSON(r.Branches)
	if err != nil {
		return fmt.Errorf("save repository %s: branches: %w", r.Name, err)
	}
	created := r.Created
	if created.IsZero() {
		created = s.now()
	}
	err = s.write(ctx, func(w wconn) error {
		_, err := w.stmt(s.q.saveRepo).ExecContext(w.ctx, r.Name, r.URL, branches, r.Forge, r.APIURL,
			rows.NullBytes(r.WebhookSecret), rows.NullBytes(r.ForgeToken), rows.Nanos(created), rows.NullBytes(r.URLCredential), r.DefaultBranch, rows.NullInt(r.Depth), r.KeepSuperseded, r.MaxRunning, int64(r.BuildTimeout), int(r.Priority))
		return err
	})
	if err != nil {
		return fmt.Errorf("save repository %s: %w", r.Name, err)
	}
	return nil
}

// GetRepo returns the repository (coordinator.ErrNotFound).
func (s *Store) GetRepo(ctx context.Context, name string) (coordinator.Repo, error) {
	r, err := rows.ScanRepo(s.q.getRepo.QueryRowContext(ctx, name))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("repository %s: %w", name, coordinator.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("get repository %s: %w", name, err)
	}
	return r, nil
}

// ListRepos returns every repository by name.
func (s *Store) ListRepos(ctx context.Context) ([]coordinator.Repo, error) {
	rs, err := s.q.listRepos.QueryContext(ctx)
	repos, err := collect(rs, err, rows.ScanRepo)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	return repos, nil
}

// RemoveRepo removes a repository and (by cascade) its secrets.
func (s *Store) RemoveRepo(ctx context.Context, name string) error {
	return s.remove(ctx, "repository "+name, s.q.removeRepo, name)
}

// FindRepo returns the repository registered under one of names, or else
// with one of urls.
func (s *Store) FindRepo(ctx context.Context, names, urls []string) (coordinator.Repo, error) {
	for _, n := range names {
		if r, err := s.GetRepo(ctx, n); !errors.Is(err, coordinator.ErrNotFound) {
			return r, err
		}
	}
	for _, u := range urls {
		r, err := rows.ScanRepo(s.q.repoByURL.QueryRowContext(ctx, u))
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return r, fmt.Errorf("find repository: %w", err)
		}
	}
	return coordinator.Repo{}, fmt.Errorf("repository: %w", coordinator.ErrNotFound)
}

// SetSecret keeps a repository's sealed secret (coordinator.ErrNotFound
// when there is no such repository).
func (s *Store) SetSecret(ctx context.Context, repo, key string, sealed []byte) error {
	if key == "" || len(sealed) == 0 {
		return errors.New("set secret: a key and a value are required")
	}
	updated := rows.Nanos(s.now())
	err := s.write(ctx, func(w wconn) error {
		res, err := w.stmt(s.q.setSecret).ExecContext(w.ctx, repo, key, sealed, updated)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("repository %s: %w", repo, coordinator.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set secret %s of %s: %w", key, repo, err)
	}
	return nil
}

// ListSecrets names a repository's secrets, by key.
func (s *Store) ListSecrets(ctx context.Context, repo string) ([]coordinator.SecretInfo, error) {
	if _, err := s.GetRepo(ctx, repo); err != nil {
		return nil, err
	}
	rs, err := s.q.listSecrets.QueryContext(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("list secrets of %s: %w", repo, err)
	}
	defer rs.Close()
	var out []coordinator.SecretInfo
	for rs.Next() {
		var si coordinator.SecretInfo
		var updated int64
		if err := rs.Scan(&si.Repo, &si.Key, &updated); err != nil {
			return nil, fmt.Errorf("list secrets of %s: %w", repo, err)
		}
		si.Updated = rows.Time(updated)
		out = append(out, si)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("list secrets of %s: %w", repo, err)
	}
	return out, nil
}

// RemoveSecret removes one secret.
func (s *Store) RemoveSecret(ctx context.Context, repo, key string) error {
	return s.remove(ctx, "secret "+key+" of "+repo, s.q.removeSecret, repo, key)
}

// Secrets returns a repository's sealed secrets by key.
func (s *Store) Secrets(ctx context.Context, repo string) (map[string][]byte, error) {
	rs, err := s.q.secrets.QueryContext(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", repo, err)
	}
	defer rs.Close()
	out := map[string][]byte{}
	for rs.Next() {
		var k string
		var v []byte
		if err := rs.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("secrets of %s: %w", repo, err)
		}
		out[k] = v
	}
	return out, rs.Err()
}

// remove runs a DELETE; no row deleted is coordinator.ErrNotFound.
func (s *Store) remove(ctx context.Context, what string, st *sql.Stmt, args ...any) error {
	err := s.write(ctx, func(w wconn) error {
		res, err := w.stmt(st).ExecContext(w.ctx, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%s: %w", what, coordinator.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove %w", err)
	}
	return nil
}
