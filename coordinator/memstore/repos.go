package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/monkeyci/monkeyci/coordinator"
)

// repo is a registered repository and its sealed secrets.
type repo struct {
	r       coordinator.Repo
	secrets map[string]coordinator.SecretInfo
	sealed  map[string][]byte
}

func (sr *repo) copyOut() coordinator.Repo {
	r := sr.r
	r.Branches = slices.Clone(r.Branches)
	r.WebhookSecret, r.ForgeToken, r.URLCredential = slices.Clone(r.WebhookSecret), slices.Clone(r.ForgeToken), slices.Clone(r.URLCredential)
	return r
}

// SaveRepo adds a repository or replaces its settings; its secrets stay,
// and so do a webhook secret and a forge token not given again. A URL
// credential not given again stays only while the URL does.
func (s *Store) SaveRepo(ctx context.Context, r coordinator.Repo) error {
	if r.Name == "" || r.URL == "" {
		return errors.New("save repository: a name and a URL are required")
	}
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("save repository %s: %w", r.Name, err)
	}
	defer s.mu.Unlock()
	r = (&repo{r: r}).copyOut()
	if len(r.Branches) == 0 {
		r.Branches = nil
	}
	old, ok := s.repos[r.Name]
	if !ok {
		if r.Created.IsZero() {
			r.Created = s.now()
		}
		r.Created = stamp(r.Created)
		s.repos[r.Name] = &repo{r: nilIfEmpty(r), secrets: map[string]coordinator.SecretInfo{}, sealed: map[string][]byte{}}
		return nil
	}
	r.Created = old.r.Created
	if len(r.URLCredential) == 0 && r.URL == old.r.URL {
		r.URLCredential = old.r.URLCredential
	}
	if len(r.WebhookSecret) == 0 {
		r.WebhookSecret = old.r.WebhookSecret
	}
	if len(r.ForgeToken) == 0 {
		r.ForgeToken = old.r.ForgeToken
	}
	old.r = nilIfEmpty(r)
	return nil
}

// nilIfEmpty makes empty sealed values nil, as the SQL store keeps no bytes.
func nilIfEmpty(r coordinator.Repo) coordinator.Repo {
	for _, b := range []*[]byte{&r.WebhookSecret, &r.ForgeToken, &r.URLCredential} {
		if len(*b) == 0 {
			*b = nil
		}
	}
	return r
}

// GetRepo returns the repository (coordinator.ErrNotFound).
func (s *Store) GetRepo(ctx context.Context, name string) (coordinator.Repo, error) {
	if err := s.lock(ctx); err != nil {
		return coordinator.Repo{}, fmt.Errorf("get repository %s: %w", name, err)
	}
	defer s.mu.Unlock()
	sr, ok := s.repos[name]
	if !ok {
		return coordinator.Repo{}, fmt.Errorf("repository %s: %w", name, coordinator.ErrNotFound)
	}
	return sr.copyOut(), nil
}

// ListRepos returns every repository by name.
func (s *Store) ListRepos(ctx context.Context) ([]coordinator.Repo, error) {
	if err := s.lock(ctx); err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	var out []coordinator.Repo
	for _, sr := range s.repos {
		out = append(out, sr.copyOut())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b coordinator.Repo) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// RemoveRepo removes a repository and its secrets.
func (s *Store) RemoveRepo(ctx context.Context, name string) error {
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("remove repository %s: %w", name, err)
	}
	defer s.mu.Unlock()
	if _, ok := s.repos[name]; !ok {
		return fmt.Errorf("remove repository %s: %w", name, coordinator.ErrNotFound)
	}
	delete(s.repos, name)
	return nil
}

// FindRepo returns the repository registered under one of names, or else
// with one of urls (the first by name when several have it).
func (s *Store) FindRepo(ctx context.Context, names, urls []string) (coordinator.Repo, error) {
	for _, n := range names {
		if r, err := s.GetRepo(ctx, n); !errors.Is(err, coordinator.ErrNotFound) {
			return r, err
		}
	}
	rs, err := s.ListRepos(ctx)
	if err != nil {
		return coordinator.Repo{}, fmt.Errorf("find repository: %w", err)
	}
	for _, u := range urls {
		for _, r := range rs {
			if r.URL == u {
				return r, nil
			}
		}
	}
	return coordinator.Repo{}, fmt.Errorf("repository: %w", coordinator.ErrNotFound)
}

// SetSecret keeps a repository's sealed secret (coordinator.ErrNotFound
// when there is no such repository).
func (s *Store) SetSecret(ctx context.Context, repoName, key string, sealed []byte) error {
	if key == "" || len(sealed) == 0 {
		return errors.New("set secret: a key and a value are required")
	}
	op := fmt.Sprintf("set secret %s of %s", key, repoName)
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer s.mu.Unlock()
	sr, ok := s.repos[repoName]
	if !ok {
		return fmt.Errorf("%s: repository %s: %w", op, repoName, coordinator.ErrNotFound)
	}
	sr.secrets[key] = coordinator.SecretInfo{Repo: repoName, Key: key, Updated: stamp(s.now())}
	sr.sealed[key] = slices.Clone(sealed)
	return nil
}

// ListSecrets names a repository's secrets, by key.
func (s *Store) ListSecrets(ctx context.Context, repoName string) ([]coordinator.SecretInfo, error) {
	if err := s.lock(ctx); err != nil {
		return nil, fmt.Errorf("list secrets of %s: %w", repoName, err)
	}
	defer s.mu.Unlock()
	sr, ok := s.repos[repoName]
	if !ok {
		return nil, fmt.Errorf("repository %s: %w", repoName, coordinator.ErrNotFound)
	}
	var out []coordinator.SecretInfo
	for _, k := range slices.Sorted(maps.Keys(sr.secrets)) {
		out = append(out, sr.secrets[k])
	}
	return out, nil
}

// RemoveSecret removes one secret.
func (s *Store) RemoveSecret(ctx context.Context, repoName, key string) error {
	op := fmt.Sprintf("remove secret %s of %s", key, repoName)
	if err := s.lock(ctx); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer s.mu.Unlock()
	sr, ok := s.repos[repoName]
	if !ok {
		return fmt.Errorf("%s: %w", op, coordinator.ErrNotFound)
	}
	if _, ok := sr.sealed[key]; !ok {
		return fmt.Errorf("%s: %w", op, coordinator.ErrNotFound)
	}
	delete(sr.sealed, key)
	delete(sr.secrets, key)
	return nil
}

// Secrets returns a repository's sealed secrets by key.
func (s *Store) Secrets(ctx context.Context, repoName string) (map[string][]byte, error) {
	if err := s.lock(ctx); err != nil {
		return nil, fmt.Errorf("secrets of %s: %w", repoName, err)
	}
	defer s.mu.Unlock()
	out := map[string][]byte{}
	if sr, ok := s.repos[repoName]; ok {
		for k, v := range sr.sealed {
			out[k] = slices.Clone(v)
		}
	}
	return out, nil
}
