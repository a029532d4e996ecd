package rows

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
)

// Scanner is a row as either store's driver gives it (database/sql's and
// pgx's rows alike).
type Scanner interface{ Scan(dest ...any) error }

// BuildColumns are the columns ScanBuild reads, in its order.
const BuildColumns = `id, repo, source_url, source_branch, source_commit, params, labels,
	state, result, message, attempt, agent, lease_expires, waiting, created, started, ended,
	trigger_desc, forge, delivery, source_tag, attempt_reasons, pull_request, cache_scope, cache_fallback, fork, priority`

// ScanBuild reads a build from BuildColumns.
func ScanBuild(row Scanner) (coordinator.Build, error) {
	var (
		b                        coordinator.Build
		params, labels, delivery *string
		reasons                  *string
		state, result            string
		lease, created, start, e int64
		priority                 int
	)
	err := row.Scan(&b.ID, &b.Repo, &b.Source.URL, &b.Source.Branch, &b.Source.Commit, &params, &labels,
		&state, &result, &b.Message, &b.Attempt, &b.Agent, &lease, &b.Waiting, &created, &start, &e,
		&b.Trigger, &b.Forge, &delivery, &b.Source.Tag, &reasons, &b.PullRequest, &b.Cache.Scope, &b.Cache.Fallback, &b.Fork, &priority)
	if err != nil {
		return b, err
	}
	b.State, b.Result, b.Priority = coordinator.State(state), events.Result(result), coordinator.Priority(priority)
	b.LeaseExpires, b.Created, b.Started, b.Ended = Time(lease), Time(created), Time(start), Time(e)
	if b.Params, err = JSONMap(params); err != nil {
		return b, fmt.Errorf("build %s: params: %w", b.ID, err)
	}
	if b.Labels, err = JSONMap(labels); err != nil {
		return b, fmt.Errorf("build %s: labels: %w", b.ID, err)
	}
	if reasons != nil {
		if err := json.Unmarshal([]byte(*reasons), &b.AttemptReasons); err != nil {
			return b, fmt.Errorf("build %s: attempt reasons: %w", b.ID, err)
		}
	}
	return b, nil
}

// BuildArgs checks b and returns what stores it: BuildColumns, then its
// event key. Its state defaults to queued and its creation time to now;
// delivery is nil (NULL) or the "forge:id" of the delivery that made it.
func BuildArgs(b coordinator.Build, now time.Time, delivery any, event string) ([]any, error) {
	b, err := b.Stored(now)
	if err != nil {
		return nil, err
	}
	params, err := MapJSON(b.Params)
	if err != nil {
		return nil, fmt.Errorf("create build %s: params: %w", b.ID, err)
	}
	labels, err := MapJSON(b.Labels)
	if err != nil {
		return nil, fmt.Errorf("create build %s: labels: %w", b.ID, err)
	}
	var reasons any
	if len(b.AttemptReasons) > 0 {
		data, err := json.Marshal(b.AttemptReasons)
		if err != nil {
			return nil, fmt.Errorf("create build %s: attempt reasons: %w", b.ID, err)
		}
		reasons = string(data)
	}
	return []any{b.ID, b.Repo, b.Source.URL, b.Source.Branch, b.Source.Commit, params, labels,
		string(b.State), string(b.Result), b.Message, b.Attempt, b.Agent, Nanos(b.LeaseExpires), b.Waiting,
		Nanos(b.Created), Nanos(b.Started), Nanos(b.Ended), b.Trigger, b.Forge, delivery, b.Source.Tag, reasons,
		b.PullRequest, b.Cache.Scope, b.Cache.Fallback, b.Fork, int(b.Priority), event}, nil
}

// RepoColumns are the columns ScanRepo reads, in its order.
const RepoColumns = `name, url, branches, forge, api_url, webhook_secret, forge_token, created, url_credential, default_branch, depth, keep_superseded, max_running, build_timeout, priority`

// ScanRepo reads a repository from RepoColumns.
func ScanRepo(row Scanner) (coordinator.Repo, error) {
	var (
		r        coordinator.Repo
		branches *string
		created  int64
		timeout  int64 // nanoseconds
		priority int
	)
	if err := row.Scan(&r.Name, &r.URL, &branches, &r.Forge, &r.APIURL, &r.WebhookSecret, &r.ForgeToken, &created,
		&r.URLCredential, &r.DefaultBranch, &r.Depth, &r.KeepSuperseded, &r.MaxRunning, &timeout, &priority); err != nil {
		return r, err
	}
	r.Created, r.BuildTimeout, r.Priority = Time(created), time.Duration(timeout), coordinator.Priority(priority)
	var err error
	if r.Branches, err = JSONList(branches); err != nil {
		return r, fmt.Errorf("repository %s: branches: %w", r.Name, err)
	}
	return r, nil
}

// AgentColumns are the columns ScanAgent reads, in its order.
const AgentColumns = `id, name, labels, credential_hash, cordoned, joined, last_seen, removed`

// ScanAgent reads an agent from AgentColumns.
func ScanAgent(row Scanner) (coordinator.Agent, error) {
	var (
		a                     coordinator.Agent
		labels                *string
		joined, seen, removed int64
	)
	if err := row.Scan(&a.ID, &a.Name, &labels, &a.CredentialHash, &a.Cordoned, &joined, &seen, &removed); err != nil {
		return a, err
	}
	a.Joined, a.LastSeen, a.Removed = Time(joined), Time(seen), Time(removed)
	var err error
	if a.Labels, err = JSONMap(labels); err != nil {
		return a, fmt.Errorf("agent %s: labels: %w", a.ID, err)
	}
	return a, nil
}

// TokenColumns are the columns ScanToken reads, in its order.
const TokenColumns = `hash, kind, created, expires, last_used`

// ScanToken reads a token from TokenColumns.
func ScanToken(row Scanner) (coordinator.Token, error) {
	var (
		t                      coordinator.Token
		kind                   string
		created, expires, used int64
	)
	if err := row.Scan(&t.Hash, &kind, &created, &expires, &used); err != nil {
		return t, err
	}
	t.Kind, t.Created, t.Expires, t.LastUsed = coordinator.TokenKind(kind), Time(created), Time(expires), Time(used)
	return t, nil
}
