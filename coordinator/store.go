// Package coordinator keeps the durable build queue, dispatches builds to
// agents over the fleet protocol with leases and fencing, stores what agents
// report, and serves the admin API.
package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/monkeyci/monkeyci/events"
)

// State is where a build is in its life.
type State string

// States.
const (
	Queued  State = "queued"
	Running State = "running" // assigned to an agent under a lease
	Ended   State = "ended"
)

// Source is what to build: a repository and a commit.
type Source struct {
	URL    string `json:"url"` // clone URL, file:// URL or local path
	Branch string `json:"branch,omitempty"`
	Commit string `json:"commit,omitempty"`
	// Tag is the tag the build is of (a tag push), empty for a branch's.
	// Without Commit, the tag's commit is built.
	Tag string `json:"tag,omitempty"`
}

// Build is a build as the coordinator keeps it.
type Build struct {
	ID     string            `json:"id"`
	Repo   string            `json:"repo"` // the repository's key (for caches)
	Source Source            `json:"source"`
	Params map[string]string `json:"params,omitempty"`
	// Labels an agent must carry to take the build.
	Labels map[string]string `json:"labels,omitempty"`

	State   State         `json:"state"`
	Result  events.Result `json:"result,omitempty"`
	Message string        `json:"message,omitempty"`
	// Attempt counts dispatches: 0 while never dispatched, then 1, 2...
	// Only the current attempt's messages are taken.
	Attempt      int       `json:"attempt"`
	Agent        string    `json:"agent,omitempty"`
	LeaseExpires time.Time `json:"lease-expires,omitzero"`
	// Waiting says why no agent took the queued build yet.
	Waiting string `json:"waiting,omitempty"`
	// AttemptReasons says why each attempt after the first exists, by
	// attempt number (Reason*).
	AttemptReasons map[int]string `json:"attempt-reasons,omitempty"`

	Created time.Time `json:"created"`
	Started time.Time `json:"started,omitzero"` // of the current attempt
	Ended   time.Time `json:"ended,omitzero"`

	// Trigger says what started the build, in words.
	Trigger string `json:"trigger,omitempty"`
	// Forge is the forge whose webhook started it ("" otherwise): where
	// its commit status goes.
	Forge string `json:"forge,omitempty"`
	// PullRequest is the number of the pull request the build is of (0:
	// none), as the forge's webhook said.
	PullRequest int `json:"pull-request,omitempty"`
	// Fork is true for a pull request from another repository (or one
	// whose delivery did not show it is the same): anyone may open one, so
	// the build gets none of the repository's secrets.
	Fork bool `json:"fork,omitempty"`
	// Cache is the scope of the caches the build's jobs write and read
	// (CacheScopeOf), decided when the build is queued.
	Cache CacheScope `json:"cache,omitzero"`
	// Priority orders it in the queue, within the turns of repositories
	// and their limits.
	Priority Priority `json:"priority,omitempty"`
	// priorityAsked: Priority was asked for; else the repository's is
	// taken (Trigger).
	priorityAsked bool

	// queuedAt is when the build last entered this process's queue (zero:
	// at Created), for the dispatch latency metric.
	queuedAt time.Time
	// turn is its place in this process's queue (turns.go; 0: none yet).
	turn uint64
}

// Stored checks a build about to be stored and fills what a store sets
// itself: its state defaults to queued and its creation time to now.
// Every store calls it as it creates a build.
func (b Build) Stored(now time.Time) (Build, error) {
	if b.ID == "" {
		return b, errors.New("create build: the build has no id")
	}
	if b.State == "" {
		b.State = Queued
	}
	switch b.State {
	case Queued, Running, Ended:
	default:
		return b, fmt.Errorf("create build %s: unknown state %q", b.ID, b.State)
	}
	if b.Attempt < 0 {
		return b, fmt.Errorf("create build %s: negative attempt %d", b.ID, b.Attempt)
	}
	if b.Created.IsZero() {
		b.Created = now
	}
	return b, nil
}

// StoredEvent is an event of one attempt of a build, with its sequence number.
type StoredEvent struct {
	BuildID string
	Attempt int
	Seq     int64
	Event   events.Event
}

// Agent is an agent as the coordinator remembers it across connections.
type Agent struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	// CredentialHash is the SHA-256 of the agent's own credential, hex.
	CredentialHash string    `json:"-"`
	Cordoned       bool      `json:"cordoned"`
	Joined         time.Time `json:"joined"`
	// LastSeen is the agent's last heartbeat (or connection) as kept: a
	// connected agent's newer one is in memory (agentConn.seen).
	LastSeen time.Time `json:"last-seen,omitzero"`
	// Removed is when an admin removed the agent (agents rm): its
	// credential is refused from then on. Zero: it was not.
	Removed time.Time `json:"removed,omitzero"`
}

// Why an attempt after the first exists (Build.AttemptReasons).
const (
	ReasonAgentLost      = "agent lost"      // its stream ended and it did not come back in the grace
	ReasonAgentRestarted = "agent restarted" // it came back without the build
	ReasonLeaseExpired   = "lease expired"   // no heartbeat renewed the lease
	ReasonRetried        = "retried by admin"
	ReasonDeclined       = "declined by agent" // it would not run it (draining)
)

// TokenKind is what a token lets its bearer do.
type TokenKind string

// Token kinds.
const (
	TokenAdmin  TokenKind = "admin"
	TokenAgent  TokenKind = "agent" // may join as an agent
	TokenViewer TokenKind = "viewer"
)

// Token is a made token as the store keeps it: its hash, never itself.
type Token struct {
	Hash     string // the SHA-256 of the token, hex
	Kind     TokenKind
	Created  time.Time
	Expires  time.Time // zero: never
	LastUsed time.Time // recorded at most once a minute
}

// TokenIDLen is how many hex digits of its hash name a token.
const TokenIDLen = 12

// ID is the token's short id: what lists show and revoking takes.
func (t Token) ID() string { return t.Hash[:min(TokenIDLen, len(t.Hash))] }

// Expired says the token's time is over at now.
func (t Token) Expired(now time.Time) bool { return !t.Expires.IsZero() && !now.Before(t.Expires) }

// BuildFilter selects builds to list; zero fields match everything.
type BuildFilter struct {
	Repo  string
	State State
	// Active: queued or running (State is then ignored).
	Active bool
	// Branch and PullRequest, when set, are the source branch and the
	// pull request's number the builds must have.
	Branch      string
	PullRequest int
	Limit       int // 0: no limit; newest first
}

// Repo is a registered repository. Its webhook secret, forge token and
// URL credential are kept sealed (encrypted with the coordinator's master
// key).
type Repo struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Branches are globs of the branches whose pushes build (none: all).
	Branches []string `json:"branches,omitempty"`
	// DefaultBranch is the branch whose caches a branch's first build may
	// read ("": DefaultBranch).
	DefaultBranch string `json:"default-branch,omitempty"`
	// Depth is how many commits of history a build's checkout holds: 0
	// all of it, nil the agent's default.
	Depth *int `json:"depth,omitempty"`
	// Forge and APIURL say where commit statuses go.
	Forge         string `json:"forge,omitempty"`
	APIURL        string `json:"api-url,omitempty"`
	WebhookSecret []byte `json:"-"` // sealed
	ForgeToken    []byte `json:"-"` // sealed
	// URLCredential is the user information (user:token) of the clone URL
	// given, sealed: URL is kept without it, and it is put back only into
	// what an agent fetches.
	URLCredential []byte `json:"-"`
	// KeepSuperseded keeps a branch's or pull request's older builds
	// running when a newer push queues another; by default they are
	// canceled (Coordinator.supersede).
	KeepSuperseded bool `json:"keep-superseded,omitempty"`
	// MaxRunning bounds how many of the repository's builds run at once
	// (0: no bound); the others wait in the queue, saying so.
	MaxRunning int `json:"max-running,omitempty"`
	// BuildTimeout bounds how long an attempt of one of its builds runs
	// before it is canceled (0: the coordinator's).
	BuildTimeout time.Duration `json:"build-timeout,omitempty"`
	// Priority is that of its builds that do not ask for one.
	Priority Priority  `json:"priority,omitempty"`
	Created  time.Time `json:"created"`
}

// Delivery is a forge's webhook delivery that makes a build.
type Delivery struct {
	Forge string // the forge's kind
	ID    string // the forge's id of the delivery
	// Event names the forge event delivered (forge.Event.Key): the same
	// event delivered again under another id makes no second build of the
	// repository when its first was created since Since.
	Event string
	Since time.Time
}

// SecretInfo names a stored secret (never its value).
type SecretInfo struct {
	Repo    string    `json:"repo"`
	Key     string    `json:"key"`
	Updated time.Time `json:"updated"`
}

// Errors a Store returns (wrapped).
var (
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: a webhook delivery seen before.
	ErrDuplicate = errors.New("delivery seen before")
	// ErrStale means the attempt named is not the build's current one, or
	// the build is not in the state the change needs: the change is refused.
	ErrStale = errors.New("stale attempt")
	// ErrNotLeader refuses a change only the leader makes (dispatch, a
	// lease, an agent's report) to a coordinator that does not hold the
	// role (any more): another one leads.
	ErrNotLeader = errors.New("this coordinator is not the leader")
)

// Store keeps the coordinator's state durably. Every method is safe for
// concurrent use and is atomic: it either happens whole or not at all.
// Changes that name an attempt are fenced: they apply only while that
// attempt is the build's current one (else ErrStale).
type Store interface {
	CreateBuild(ctx context.Context, b Build) error
	GetBuild(ctx context.Context, id string) (Build, error)
	// BuildIDs returns the ids that start with prefix, in order, at most limit.
	BuildIDs(ctx context.Context, prefix string, limit int) ([]string, error)
	ListBuilds(ctx context.Context, f BuildFilter) ([]Build, error)
	// Queued returns the queued builds, oldest first.
	Queued(ctx context.Context) ([]Build, error)
	// Running returns the builds under a lease.
	Running(ctx context.Context) ([]Build, error)
	// SetWaiting records why a queued build was not dispatched.
	SetWaiting(ctx context.Context, id, why string) error

	// Assign moves a queued build to running as attempt (which must be its
	// attempt+1), on agent, with a lease.
	Assign(ctx context.Context, id string, attempt int, agent string, lease time.Time) error
	// Renew extends the lease of a running attempt.
	Renew(ctx context.Context, id string, attempt int, lease time.Time) error
	// Requeue puts a running attempt back in the queue (agent lost); reason
	// is kept as why the next attempt exists.
	Requeue(ctx context.Context, id string, attempt int, reason string) error
	// Handback is Requeue for a build that needs another kind of agent
	// than the one it was sent to: its labels become labels.
	Handback(ctx context.Context, id string, attempt int, reason string, labels map[string]string) error
	// Finish ends a build's attempt with a result. attempt 0 ends a queued
	// build (canceled before dispatch, or given up).
	Finish(ctx context.Context, id string, attempt int, result events.Result, message string) error
	// Retry queues an ended build again as a new attempt; reason is kept as
	// why it exists.
	Retry(ctx context.Context, id, reason string) error

	// AppendEvent stores an attempt's event under its sequence number. It is
	// idempotent: storing a seq again changes nothing and reports false.
	AppendEvent(ctx context.Context, e StoredEvent) (bool, error)
	// LastSeq is the highest seq stored for the attempt with every one
	// before it stored too (0 when none).
	LastSeq(ctx context.Context, id string, attempt int) (int64, error)
	// Events returns a build's events, attempt by attempt, in seq order.
	Events(ctx context.Context, id string) ([]StoredEvent, error)

	SaveAgent(ctx context.Context, a Agent) error
	// SeenAgent moves a kept agent's LastSeen on to at (never back).
	SeenAgent(ctx context.Context, id string, at time.Time) error
	// GetAgent returns an agent, removed or not.
	GetAgent(ctx context.Context, id string) (Agent, error)
	// ListAgents returns the agents not removed.
	ListAgents(ctx context.Context) ([]Agent, error)
	// RemoveAgent marks an agent removed and forgets its credential; saving
	// it later changes nothing (ErrNotFound: none, or removed already).
	RemoveAgent(ctx context.Context, id string) error

	// SaveToken keeps a token's hash with its kind and expiry.
	SaveToken(ctx context.Context, t Token) error
	// GetToken returns the token with that hash (ErrNotFound).
	GetToken(ctx context.Context, hash string) (Token, error)
	// TokensByID returns the tokens whose short id starts with prefix.
	TokensByID(ctx context.Context, prefix string) ([]Token, error)
	ListTokens(ctx context.Context) ([]Token, error)
	// RevokeToken forgets the token with that hash (ErrNotFound).
	RevokeToken(ctx context.Context, hash string) error
	// TokenUsed records when a token was last used.
	TokenUsed(ctx context.Context, hash string, at time.Time) error

	// CreateDeliveredBuild stores a build started by a forge's delivery,
	// once: a delivery id seen before, or a delivery of the same event of
	// the same repository (b.Repo) as a build created since d.Since, stores
	// nothing and returns ErrDuplicate with the id of the build made first.
	// The check and the insert are one change.
	CreateDeliveredBuild(ctx context.Context, b Build, d Delivery) (string, error)

	// SaveRepo adds a repository or replaces its settings (its secrets stay).
	SaveRepo(ctx context.Context, r Repo) error
	GetRepo(ctx context.Context, name string) (Repo, error)
	ListRepos(ctx context.Context) ([]Repo, error)
	// RemoveRepo removes a repository and its secrets.
	RemoveRepo(ctx context.Context, name string) error
	// FindRepo returns the repository registered under one of names, or
	// else with one of urls (ErrNotFound).
	FindRepo(ctx context.Context, names, urls []string) (Repo, error)

	// SetSecret keeps a repository's secret, sealed.
	SetSecret(ctx context.Context, repo, key string, sealed []byte) error
	ListSecrets(ctx context.Context, repo string) ([]SecretInfo, error)
	RemoveSecret(ctx context.Context, repo, key string) error
	// Secrets returns a repository's sealed secrets by key.
	Secrets(ctx context.Context, repo string) (map[string][]byte, error)

	Close() error
}
