package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

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
	_, err = s.exec(ctx, `INSERT INTO repos (`+rows.RepoColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (name) DO UPDATE SET url = excluded.url,
			url_credential = CASE WHEN excluded.url_credential IS NOT NULL THEN excluded.url_credential
				WHEN excluded.url = repos.url THEN repos.url_credential END,
			branches = excluded.branches, default_branch = excluded.default_branch, depth = excluded.depth,
			keep_superseded = excluded.keep_superseded, max_running = excluded.max_running, build_timeout = excluded.build_timeout, priority = excluded.priority,
			forge = excluded.forge, api_url = excluded.api_url,
			webhook_secret = coalesce(excluded.webhook_secret, repos.webhook_secret),
			forge_token = coalesce(excluded.forge_token, repos.forge_token)`,
		r.Name, r.URL, branches, r.Forge, r.APIURL, rows.NullBytes(r.WebhookSecret), rows.NullBytes(r.ForgeToken),
		rows.Nanos(created), rows.NullBytes(r.URLCredential), r.DefaultBranch, rows.NullInt(r.Depth), r.KeepSuperseded, r.MaxRunning, int64(r.BuildTimeout), int(r.Priority))
	if err != nil {
		return fmt.Errorf("save repository %s: %w", r.Name, err)
	}
	return nil
}

// GetRepo returns the repository (coordinator.ErrNotFound).
func (s *Store) GetRepo(ctx context.Context, name string) (coordinator.Repo, error) {
	r, err := rows.ScanRepo(s.db.QueryRow(ctx, `SELECT `+rows.RepoColumns+` FROM repos WHERE name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("repository %s: %w", name, coordinator.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("get repository %s: %w", name, err)
	}
	return r, nil
}

// ListRepos returns every repository by name.
func (s *Store) ListRepos(ctx context.Context) ([]coordinator.Repo, error) {
	rs, err := s.db.Query(ctx, `SELECT `+rows.RepoColumns+` FROM repos ORDER BY name`)
	repos, err := collect(rs, err, rows.ScanRepo)
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	return repos, nil
}

// RemoveRepo removes a repository and (by cascade) its secrets.
func (s *Store) RemoveRepo(ctx context.Context, name string) error {
	return s.remove(ctx, "repository "+name, `DELETE FROM repos WHERE name = $1`, name)
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
		r, err := rows.ScanRepo(s.db.QueryRow(ctx, `SELECT `+rows.RepoColumns+` FROM repos WHERE url = $1 ORDER BY name LIMIT 1`, u))
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
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
	n, err := s.exec(ctx, `INSERT INTO secrets (repo, key, value, updated)
		SELECT name, $2::text, $3::bytea, $4::bigint FROM repos WHERE name = $1
		ON CONFLICT (repo, key) DO UPDATE SET value = excluded.value, updated = excluded.updated`,
		repo, key, sealed, rows.Nanos(s.now()))
	if err == nil && n == 0 {
		err = fmt.Errorf("repository %s: %w", repo, coordinator.ErrNotFound)
	}
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
	rs, err := s.db.Query(ctx, `SELECT repo, key, updated FROM secrets WHERE repo = $1 ORDER BY key`, repo)
	out, err := collect(rs, err, func(r rows.Scanner) (coordinator.SecretInfo, error) {
		var si coordinator.SecretInfo
		var updated int64
		err := r.Scan(&si.Repo, &si.Key, &updated)
		si.Updated = rows.Time(updated)
		return si, err
	})
	if err != nil {
		return nil, fmt.Errorf("list secrets of %s: %w", repo, err)
	}
	return out, nil
}

// RemoveSecret removes one secret.
func (s *Store) RemoveSecret(ctx context.Context, repo, key string) error {
	return s.remove(ctx, "secret "+key+" of "+repo, `DELETE FROM secrets WHERE repo = $1 AND key = $2`, repo, key)
}

// Secrets returns a repository's sealed secrets by key.
func (s *Store) Secrets(ctx context.Context, repo string) (map[string][]byte, error) {
	rs, err := s.db.Query(ctx, `SELECT key, value FROM secrets WHERE repo = $1`, repo)
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
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", repo, err)
	}
	return out, nil
}
