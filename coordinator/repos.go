package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/sync/singleflight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/forge"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Sealer encrypts secrets at rest (package secret's Keyring). context
// binds a sealed value to its name.
type Sealer interface {
	Seal(value []byte, context string) ([]byte, error)
	Open(sealed []byte, context string) ([]byte, error)
}

// What each sealed value is bound to.
func webhookSecretContext(repo string) string { return "repo/" + repo + "/webhook-secret" }
func forgeTokenContext(repo string) string    { return "repo/" + repo + "/forge-token" }
func secretContext(repo, key string) string   { return "repo/" + repo + "/secret/" + key }
func urlCredentialContext(repo string) string { return "repo/" + repo + "/url-credential" }

// secretKey is an environment variable's name.
var secretKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *Coordinator) sealer() (Sealer, error) {
	if c.cfg.Keys == nil {
		return nil, status.Error(codes.FailedPrecondition, "the coordinator has no master key: secrets cannot be kept")
	}
	return c.cfg.Keys, nil
}

func (s *AdminServer) AddRepo(ctx context.Context, r *fleet.Repo) (*fleet.Repo, error) {
	repo := Repo{Name: strings.TrimSpace(r.GetName()), URL: strings.TrimSpace(r.GetUrl()), Branches: r.GetBranches(), APIURL: r.GetApiUrl(),
		DefaultBranch: strings.TrimSpace(r.GetDefaultBranch()), KeepSuperseded: r.GetKeepSuperseded(),
		MaxRunning: int(r.GetMaxRunning()), BuildTimeout: time.Duration(r.GetBuildTimeoutSeconds()) * time.Second}
	var err error
	if repo.Priority, err = ParsePriority(r.GetPriority()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if r.Depth != nil {
		d := int(r.GetDepth())
		repo.Depth = &d
	}
	if repo.DefaultBranch == "" {
		repo.DefaultBranch = DefaultBranch
	}
	// A credential in the URL (https://user:token@host/...) is sealed and
	// kept apart: what is stored, shown and matched is the URL without it.
	var credential string
	repo.URL, credential = source.SplitCredentials(repo.URL)
	switch {
	case repo.Name == "" || strings.ContainsFunc(repo.Name, unicode.IsSpace) || strings.ContainsFunc(repo.Name, unicode.IsControl):
		return nil, status.Error(codes.InvalidArgument, "a repository needs a name without spaces or control characters (owner/name is usual)")
	case repo.URL == "":
		return nil, status.Error(codes.InvalidArgument, "--url: the repository's clone URL or local path is required")
	case strings.ContainsFunc(repo.URL, unicode.IsControl) || strings.ContainsFunc(repo.APIURL, unicode.IsControl):
		return nil, status.Error(codes.InvalidArgument, "--url, --api-url: a URL holds a control character, which no clone URL has")
	case strings.ContainsFunc(repo.DefaultBranch, unicode.IsSpace) || strings.ContainsFunc(repo.DefaultBranch, unicode.IsControl):
		return nil, status.Errorf(codes.InvalidArgument, "--default-branch: %q is not a branch name", repo.DefaultBranch)
	case repo.Depth != nil && *repo.Depth < 0:
		return nil, status.Errorf(codes.InvalidArgument, "--depth %d: expected the commits of history to fetch, like 50, or 0 for all of it", *repo.Depth)
	case repo.BuildTimeout < 0:
		return nil, status.Errorf(codes.InvalidArgument, "--build-timeout %s: expected how long a build may run, like 30m, or 0 for the coordinator's", repo.BuildTimeout)
	case repo.MaxRunning < 0:
		return nil, status.Errorf(codes.InvalidArgument, "--max-running %d: expected how many builds may run at once, like 2, or 0 for any", repo.MaxRunning)
	}
	for _, g := range repo.Branches {
		if _, err := path.Match(g, ""); err != nil || g == "" || strings.ContainsFunc(g, unicode.IsControl) {
			return nil, status.Errorf(codes.InvalidArgument, "--branches: %q is not a glob", g)
		}
	}
	if r.GetForge() != "" {
		k, err := forge.ParseKind(r.GetForge())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "--forge: %v", err)
		}
		repo.Forge = string(k)
	} else {
		repo.Forge = string(guessForge(repo.URL))
	}
	if r.GetWebhookSecret() != "" || r.GetForgeToken() != "" || credential != "" {
		keys, err := s.c.sealer()
		if err != nil {
			return nil, err
		}
		if v := r.GetWebhookSecret(); v != "" {
			if repo.WebhookSecret, err = keys.Seal([]byte(v), webhookSecretContext(repo.Name)); err != nil {
				return nil, status.Errorf(codes.Internal, "sealing the webhook secret: %v", err)
			}
		}
		if v := r.GetForgeToken(); v != "" {
			if repo.ForgeToken, err = keys.Seal([]byte(v), forgeTokenContext(repo.Name)); err != nil {
				return nil, status.Errorf(codes.Internal, "sealing the forge token: %v", err)
			}
		}
		if credential != "" {
			if repo.URLCredential, err = keys.Seal([]byte(credential), urlCredentialContext(repo.Name)); err != nil {
				return nil, status.Errorf(codes.Internal, "sealing the URL's credential: %v", err)
			}
		}
	}
	if err := s.c.cfg.Store.SaveRepo(ctx, repo); err != nil {
		return nil, storeError(err)
	}
	s.c.repos.add(repo)
	s.c.applyLimits()
	saved, err := s.c.cfg.Store.GetRepo(ctx, repo.Name)
	if err != nil {
		return nil, storeError(err)
	}
	return repoInfo(saved), nil
}

// guessForge names the forge of a well-known host ("" otherwise: a
// webhook's path says it).
func guessForge(cloneURL string) forge.Kind {
	host := cloneURL
	if u, err := url.Parse(cloneURL); err == nil && u.Host != "" {
		host = u.Host
	} else if at := strings.Index(cloneURL, "@"); at >= 0 { // git@host:path
		host, _, _ = strings.Cut(cloneURL[at+1:], ":")
	}
	switch strings.ToLower(host) {
	case "github.com":
		return forge.GitHub
	case "gitlab.com":
		return forge.GitLab
	case "bitbucket.org":
		return forge.Bitbucket
	case "codeberg.org", "gitea.com":
		return forge.Gitea
	}
	return ""
}

// repoInfo is what an admin is told of a repository: never a secret. A URL
// credential shows as *** (https://***@host/...).
func repoInfo(r Repo) *fleet.Repo {
	shown := source.Redact(r.URL)
	if len(r.URLCredential) > 0 {
		shown = source.WithCredentials(shown, "***")
	}
	return &fleet.Repo{
		Name: r.Name, Url: shown, Branches: r.Branches, Forge: r.Forge, ApiUrl: r.APIURL, DefaultBranch: r.DefaultBranch,
		HasWebhookSecret: len(r.WebhookSecret) > 0, HasForgeToken: len(r.ForgeToken) > 0, Created: timestamppb.New(r.Created),
		Depth: depthOf(r.Depth), KeepSuperseded: r.KeepSuperseded, MaxRunning: int32(r.MaxRunning),
		BuildTimeoutSeconds: int64(r.BuildTimeout / time.Second), Priority: r.Priority.String(),
	}
}

func (s *AdminServer) ListRepos(ctx context.Context, _ *fleet.ListReposRequest) (*fleet.ListReposResponse, error) {
	rs, err := s.c.cfg.Store.ListRepos(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	resp := &fleet.ListReposResponse{}
	for _, r := range rs {
		resp.Repos = append(resp.Repos, repoInfo(r))
	}
	return resp, nil
}

func (s *AdminServer) RemoveRepo(ctx context.Context, r *fleet.RepoRef) (*fleet.Repo, error) {
	repo, err := s.c.cfg.Store.GetRepo(ctx, r.GetName())
	if err != nil {
		return nil, storeError(err)
	}
	if err := s.c.cfg.Store.RemoveRepo(ctx, repo.Name); err != nil {
		return nil, storeError(err)
	}
	s.c.repos.remove(repo.Name)
	s.c.applyLimits()
	return repoInfo(repo), nil
}

func (s *AdminServer) SetSecret(ctx context.Context, r *fleet.SetSecretRequest) (*fleet.SecretInfo, error) {
	if !secretKey.MatchString(r.GetKey()) {
		return nil, status.Errorf(codes.InvalidArgument, "secret key %q: use letters, digits and _ (it becomes an environment variable)", r.GetKey())
	}
	if len(r.GetValue()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "the secret's value is empty (it is read from standard input)")
	}
	if r.GetKey() == DeployKeySecret {
		if err := source.CheckSSHKey(string(r.GetValue())); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s (the deploy key): %v", DeployKeySecret, err)
		}
	}
	keys, err := s.c.sealer()
	if err != nil {
		return nil, err
	}
	sealed, err := keys.Seal(r.GetValue(), secretContext(r.GetRepo(), r.GetKey()))
	if err != nil {
		return nil, status.Errorf(codes.Internal, "sealing the secret: %v", err)
	}
	if err := s.c.cfg.Store.SetSecret(ctx, r.GetRepo(), r.GetKey(), sealed); err != nil {
		return nil, storeError(err)
	}
	return &fleet.SecretInfo{Repo: r.GetRepo(), Key: r.GetKey(), Updated: timestamppb.New(s.c.cfg.Now())}, nil
}

func (s *AdminServer) ListSecrets(ctx context.Context, r *fleet.RepoRef) (*fleet.ListSecretsResponse, error) {
	infos, err := s.c.cfg.Store.ListSecrets(ctx, r.GetName())
	if err != nil {
		return nil, storeError(err)
	}
	resp := &fleet.ListSecretsResponse{}
	for _, si := range infos {
		resp.Secrets = append(resp.Secrets, &fleet.SecretInfo{Repo: si.Repo, Key: si.Key, Updated: timestamppb.New(si.Updated)})
	}
	return resp, nil
}

func (s *AdminServer) RemoveSecret(ctx context.Context, r *fleet.SecretRef) (*fleet.SecretInfo, error) {
	if err := s.c.cfg.Store.RemoveSecret(ctx, r.GetRepo(), r.GetKey()); err != nil {
		return nil, storeError(err)
	}
	return &fleet.SecretInfo{Repo: r.GetRepo(), Key: r.GetKey()}, nil
}

// DeployKeySecret is the repository secret that holds the SSH deploy key
// its builds are fetched with (repos add --ssh-key-stdin sets it). It goes
// to the agent's fetch, never to a job's environment.
const DeployKeySecret = "MONKEYCI_SSH_KEY"

// secretsOf opens a registered repository's secrets for an assignment's
// jobs (nil for a repository that is not registered: no store read).
func (c *Coordinator) secretsOf(ctx context.Context, repo string) (map[string]string, error) {
	if !c.registered(repo) {
		return nil, nil
	}
	sealed, err := c.cfg.Store.Secrets(ctx, repo)
	if err != nil || len(sealed) == 0 {
		return nil, err
	}
	keys, err := c.sealer()
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(sealed))
	for k, v := range sealed {
		if k == DeployKeySecret {
			continue
		}
		plain, err := keys.Open(v, secretContext(repo, k))
		if err != nil {
			return nil, fmt.Errorf("secret %s of %s: %w", k, repo, err)
		}
		out[k] = string(plain)
	}
	return out, nil
}

// depthOf is a repository's depth setting as the API says it (nil:
// unset).
func depthOf(d *int) *int32 {
	if d == nil {
		return nil
	}
	n := int32(*d)
	return &n
}

// repoDepth is a registered repository's depth setting (nil: none, or
// not registered).
func (c *Coordinator) repoDepth(ctx context.Context, repo string) (*int32, error) {
	if !c.registered(repo) {
		return nil, nil
	}
	r, err := c.cfg.Store.GetRepo(ctx, repo)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return depthOf(r.Depth), nil
}

// deployKey opens a registered repository's deploy key ("" when it has
// none).
func (c *Coordinator) deployKey(ctx context.Context, repo string) (string, error) {
	if !c.registered(repo) {
		return "", nil
	}
	sealed, err := c.cfg.Store.Secrets(ctx, repo)
	if err != nil || len(sealed[DeployKeySecret]) == 0 {
		return "", err
	}
	keys, err := c.sealer()
	if err != nil {
		return "", err
	}
	plain, err := keys.Open(sealed[DeployKeySecret], secretContext(repo, DeployKeySecret))
	if err != nil {
		return "", fmt.Errorf("the deploy key of %s: %w", repo, err)
	}
	return string(plain), nil
}

// sealURLCredential seals the credential of a repository registered with
// one in its URL before credentials were kept apart.
func (c *Coordinator) sealURLCredential(ctx context.Context, r Repo) error {
	bare, credential := source.SplitCredentials(r.URL)
	if credential == "" {
		return nil
	}
	keys, err := c.sealer()
	if err != nil {
		return fmt.Errorf("repository %s has a credential in its URL, which cannot be sealed: %w", r.Name, err)
	}
	if r.URLCredential, err = keys.Seal([]byte(credential), urlCredentialContext(r.Name)); err != nil {
		return fmt.Errorf("sealing the URL credential of %s: %w", r.Name, err)
	}
	r.URL = bare
	if err := c.cfg.Store.SaveRepo(ctx, r); err != nil {
		return fmt.Errorf("sealing the URL credential of %s: %w", r.Name, err)
	}
	c.log.Info("sealed the credential in a repository's URL", "repo", r.Name, "url", r.URL)
	return nil
}

// fetchURL is the URL an agent fetches b from: its source URL, with the
// registered repository's credential put back when the build is of that
// repository's URL (a build made before its URL changed gets none).
func (c *Coordinator) fetchURL(ctx context.Context, b *Build) (string, error) {
	if !c.registered(b.Repo) {
		return b.Source.URL, nil
	}
	r, err := c.cfg.Store.GetRepo(ctx, b.Repo)
	if errors.Is(err, ErrNotFound) || err == nil && (len(r.URLCredential) == 0 || r.URL != b.Source.URL) {
		return b.Source.URL, nil
	}
	if err != nil {
		return "", err
	}
	keys, err := c.sealer()
	if err != nil {
		return "", err
	}
	info, err := keys.Open(r.URLCredential, urlCredentialContext(r.Name))
	if err != nil {
		return "", fmt.Errorf("the URL credential of %s: %w", r.Name, err)
	}
	return source.WithCredentials(b.Source.URL, string(info)), nil
}

// registered says whether a repository of that name is registered:
// whether to read it from the store. A coordinator sharing its store
// learns from it what the others registered: on a name it does not know,
// it reads the names again, at most every reposStale.
func (c *Coordinator) registered(name string) bool {
	if c.repos.has(name) {
		return true
	}
	if !c.cfg.Elected || !c.repos.stale(c.cfg.Now()) {
		return false
	}
	if err := c.refreshRepos(context.Background()); err != nil {
		c.log.Warn("could not read the repositories", "error", err)
		return true // read it: better a store read than no secrets
	}
	return c.repos.has(name)
}

// refreshRepos reads the registered repositories again: their names, and
// their limits for the dispatcher. Those asking at once share one read (a
// burst of builds would otherwise each read them).
func (c *Coordinator) refreshRepos(ctx context.Context) error {
	_, err, _ := c.repos.reading.Do("", func() (any, error) {
		repos, err := c.cfg.Store.ListRepos(ctx)
		if err != nil {
			return nil, err
		}
		c.repos.reset(repos, c.cfg.Now())
		c.applyLimits()
		return nil, nil
	})
	return err
}

// applyLimits gives the dispatcher the repositories' limits as this
// process knows them now.
func (c *Coordinator) applyLimits() { c.dispatcher.setLimits(c.repos.limits()) }

// reposStale is how old the names of the repositories registered may be
// when a coordinator sharing its store meets a name it does not know.
const reposStale = 250 * time.Millisecond

// repoNames are the registered repositories' names and the settings the
// leader's dispatch and timeouts need, as this process knows them: a
// build of another has no secrets, and no store read to find that out.
type repoNames struct {
	mu    sync.Mutex
	repos map[string]repoLimit // every registered one, by name
	read  time.Time            // when they were last read from the store
	// reading is the read under way.
	reading singleflight.Group
}

// repoLimit is what bounds a repository's builds.
type repoLimit struct {
	maxRunning int
	timeout    time.Duration // 0: the coordinator's
}

func limitOf(r Repo) repoLimit { return repoLimit{r.MaxRunning, r.BuildTimeout} }

// stale says the names were read from the store longer than reposStale
// ago.
func (r *repoNames) stale(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return now.Sub(r.read) >= reposStale
}

// reset makes repos those registered, read from the store at now.
func (r *repoNames) reset(repos []Repo, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.repos = make(map[string]repoLimit, len(repos))
	for _, rp := range repos {
		r.repos[rp.Name] = limitOf(rp)
	}
	r.read = now
}

func (r *repoNames) add(rp Repo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.repos == nil {
		r.repos = map[string]repoLimit{}
	}
	r.repos[rp.Name] = limitOf(rp)
}

func (r *repoNames) remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.repos, name)
}

// limits are the bounds on running builds of the repositories that have
// one.
func (r *repoNames) limits() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for name, l := range r.repos {
		if l.maxRunning > 0 {
			out[name] = l.maxRunning
		}
	}
	return out
}

// timeout is the repository's build timeout (0: none of its own).
func (r *repoNames) timeout(name string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.repos[name].timeout
}

func (r *repoNames) has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.repos[name]
	return ok
}

// resolveRepo makes a build of a registered repository named by Repo (or
// by its URL field, as `trigger --repo NAME` sends it) build from the
// registered URL, and returns the repository's default branch ("" when
// none is registered).
func (c *Coordinator) resolveRepo(ctx context.Context, b *Build) (string, error) {
	for _, name := range []string{b.Repo, b.Source.URL} {
		if !c.registered(name) {
			continue
		}
		r, err := c.cfg.Store.GetRepo(ctx, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		b.Repo, b.Source.URL = r.Name, r.URL
		if !b.priorityAsked {
			b.Priority = r.Priority
		}
		return r.DefaultBranch, nil
	}
	return "", nil
}
