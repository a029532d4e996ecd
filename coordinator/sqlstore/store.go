// Package sqlstore keeps the coordinator's state in an SQLite database file
// (modernc.org/sqlite: pure Go, no cgo). It implements coordinator.Store.
//
// The database runs in WAL mode. Changes go through one connection, one at
// a time, and the changes that wait meanwhile are committed together
// (group commit, see writer.go); reads go through a pool of read-only
// connections and proceed while a write is under way.
// One process owns the file: BEGIN IMMEDIATE and the busy timeout keep
// another one from corrupting it, but the store does not expect one.
//
// Fencing: every change that names an attempt is one UPDATE whose WHERE
// names the build, the attempt and the state the change needs; when it
// changes no row the build is read, before any other change, to say why
// (coordinator.ErrNotFound or coordinator.ErrStale, wrapped).
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
)

var _ coordinator.Store = (*Store)(nil)

// Store is a coordinator.Store in an SQLite file. It is safe for concurrent
// use.
type Store struct {
	w   *sql.DB // one connection, for the changes (see writer.go)
	r   *sql.DB // read-only connections
	now func() time.Time
	q   stmts

	// Changes (see writer.go).
	wmu      sync.Mutex
	queue    []*change // waiting changes; the first leads
	batch    []*change // the leader's, reused
	closed   bool
	inflight sync.WaitGroup
	direct   bool // Options.direct
	closeErr error

	// The background checkpointer (checkpoint.go).
	cp        *sql.DB
	cpStop    chan struct{}
	cpStopped chan struct{}
}

// Options tune Open; the zero value is what Open uses.
type Options struct {
	// Durable makes every commit reach the disk before it returns
	// (synchronous=FULL). Without it (synchronous=NORMAL) a commit
	// survives the process being killed but the last ones may be lost if
	// the machine loses power.
	Durable bool
	// Now is the clock for the times the store sets itself (Started,
	// Ended, token creation); time.Now when nil.
	Now func() time.Time
	// Readers bounds the read connections; max(4, GOMAXPROCS) when 0.
	Readers int

	// direct runs each change alone in its caller's goroutine, under a
	// mutex, without group commit: to measure what group commit brings.
	direct bool
}

// busyTimeout is how long a connection waits for a lock held by another
// process before it gives up with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Open opens the database file at path, creating it if needed, and brings
// its schema up to date.
func Open(path string) (*Store, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with options.
func OpenWith(path string, o Options) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	if err := ownerOnly(abs); err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	synchronous := "NORMAL"
	if o.Durable {
		synchronous = "FULL"
	}
	timeout := fmt.Sprint(busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_busy_timeout": {timeout},
		"_journal_mode": {"WAL"},
		"_synchronous":  {synchronous},
		"_foreign_keys": {"1"},
		"_txlock":       {"immediate"},
		// Checkpoints are the checkpointer's (checkpoint.go), not a commit's.
		"_pragma": {"wal_autocheckpoint(0)"},
	}))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	ctx := context.Background()
	fail := func(what string, err error) (*Store, error) {
		_ = w.Close()
		return nil, fmt.Errorf("sqlstore: open %s: %s: %w", path, what, err)
	}
	var mode string
	if err := w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fail("read journal mode", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fail("set journal mode", fmt.Errorf("the journal mode is %q, not wal (is the file on a file system without shared memory?)", mode))
	}
	if err := migrate(ctx, w, migrations); err != nil {
		return fail("schema", err)
	}

	r, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_busy_timeout": {timeout},
		"_query_only":   {"1"},
	}))
	if err != nil {
		return fail("open readers", err)
	}
	n := o.Readers
	if n <= 0 {
		n = max(4, runtime.GOMAXPROCS(0))
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	if err := r.PingContext(ctx); err != nil {
		_ = r.Close()
		return fail("open readers", err)
	}
	s := &Store{w: w, r: r, now: o.Now, direct: o.direct}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.q.prepare(ctx, w, r); err != nil {
		_ = r.Close()
		return fail("prepare statements", err)
	}
	if err := s.startCheckpoints(abs, timeout); err != nil {
		_ = r.Close()
		return fail("open the checkpointer", err)
	}
	return s, nil
}

// ownerOnly makes the database file, before SQLite opens it, readable by
// its owner alone: SQLite gives its -wal and -shm files the database's
// mode, so they are 0600 too.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// dsn is a file: URI for the driver: the path escaped, the options in the
// query.
func dsn(abs string, q url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), OmitHost: true, RawQuery: q.Encode()}
	return u.String()
}

// Close waits for the changes under way and closes the database. Changes
// after it fail; closing again does nothing.
func (s *Store) Close() error {
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return s.closeErr
	}
	s.closed = true
	s.wmu.Unlock()
	s.inflight.Wait()
	s.stopCheckpoints()
	err := errors.Join(s.r.Close(), s.w.Close(), s.cp.Close()) // closes the statements too
	s.wmu.Lock()
	s.closeErr = err
	s.wmu.Unlock()
	return err
}

// stmts are the store's statements, prepared once: compiling SQL costs
// more than running these.
type stmts struct {
	// On the writer.
	createBuild, assign, renew, requeue, handback, finish, finishQueued, retry, setWaiting *sql.Stmt
	appendEvent, saveAgent, removeAgent, saveToken, revokeToken, tokenUsed                 *sql.Stmt
	saveRepo, removeRepo, setSecret, removeSecret, savePool                                *sql.Stmt
	seenAgent                                                                              *sql.Stmt
	// A read on the writer, to say why a change did not apply: before any
	// other change, in the change's own transaction if it has one.
	wcurrent, wsameEvent *sql.Stmt
	// On the readers.
	getBuild, queued, running, lastSeq, events, buildExists *sql.Stmt
	buildIDs                                                *sql.Stmt
	getAgent, listAgents, getToken, tokensByID, listTokens  *sql.Stmt
	buildOfDelivery, getRepo, listRepos, repoByURL          *sql.Stmt
	listSecrets, secrets, getPool                           *sql.Stmt
}

func (q *stmts) prepare(ctx context.Context, w, r *sql.DB) error {
	for _, p := range []struct {
		db  *sql.DB
		s   **sql.Stmt
		sql string
	}{
		{w, &q.createBuild, `INSERT INTO builds (` + rows.BuildColumns + `, event_key)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{w, &q.assign, `UPDATE builds SET state = 'running', attempt = ?3, agent = ?4, lease_expires = ?5,
			started = ?6, waiting = '' WHERE id = ?1 AND attempt = ?2 AND state = 'queued'`},
		{w, &q.renew, `UPDATE builds SET lease_expires = ?3 WHERE id = ?1 AND attempt = ?2 AND state = 'running'`},
		{w, &q.requeue, `UPDATE builds SET state = 'queued', agent = '', lease_expires = 0, started = 0, waiting = '',
			attempt_reasons = json_set(coalesce(attempt_reasons, '{}'), '$."' || (attempt + 1) || '"', ?3)
			WHERE id = ?1 AND attempt = ?2 AND state = 'running'`},
		{w, &q.handback, `UPDATE builds SET state = 'queued', agent = '', lease_expires = 0, started = 0, waiting = '',
			attempt_reasons = json_set(coalesce(attempt_reasons, '{}'), '$."' || (attempt + 1) || '"', ?3), labels = ?4
			WHERE id = ?1 AND attempt = ?2 AND state = 'running'`},
		{w, &q.finish, `UPDATE builds SET state = 'ended', result = ?3, message = ?4, ended = ?5,
			lease_expires = 0, waiting = '' WHERE id = ?1 AND attempt = ?2 AND state = 'running'`},
		{w, &q.finishQueued, `UPDATE builds SET state = 'ended', result = ?2, message = ?3, ended = ?4,
			lease_expires = 0, waiting = '' WHERE id = ?1 AND state = 'queued'`},
		{w, &q.retry, `UPDATE builds SET state = 'queued', result = '', message = '', agent = '',
			lease_expires = 0, waiting = '', started = 0, ended = 0,
			attempt_reasons = json_set(coalesce(attempt_reasons, '{}'), '$."' || (attempt + 1) || '"', ?2)
			WHERE id = ?1 AND state = 'ended'`},
		// Unchanged, Waiting is not written again (the dispatcher says it often).
		{w, &q.setWaiting, `UPDATE builds SET waiting = ?2 WHERE id = ?1 AND state = 'queued' AND waiting <> ?2`},
		// The fence and the insert in one statement: no row is selected
		// unless the attempt is current and running; OR IGNORE skips a seq
		// stored already. The trigger events_advance_mark moves the mark.
		{w, &q.appendEvent, `INSERT OR IGNORE INTO events (build_id, attempt, seq, event)
			SELECT id, attempt, ?3, ?4 FROM builds WHERE id = ?1 AND attempt = ?2 AND state = 'running'`},
		// An UPDATE: an agent removed meanwhile is not made again.
		{w, &q.seenAgent, `UPDATE agents SET last_seen = ?2 WHERE id = ?1 AND last_seen < ?2`},
		// A removed agent stays removed: saving it changes nothing.
		{w, &q.saveAgent, `INSERT INTO agents (` + rows.AgentColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, 0)
			ON CONFLICT (id) DO UPDATE SET name = excluded.name, labels = excluded.labels,
				credential_hash = excluded.credential_hash, cordoned = excluded.cordoned,
				joined = excluded.joined, last_seen = excluded.last_seen WHERE agents.removed = 0`},
		{w, &q.removeAgent, `UPDATE agents SET removed = ?2, credential_hash = '' WHERE id = ?1 AND removed = 0`},
		{w, &q.saveToken, `INSERT INTO tokens (hash, id, kind, created, expires) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (hash) DO UPDATE SET kind = excluded.kind, expires = excluded.expires`},
		{w, &q.revokeToken, `DELETE FROM tokens WHERE hash = ?`},
		{w, &q.tokenUsed, `UPDATE tokens SET last_used = ?2 WHERE hash = ?1`},

		// Saving a repository again keeps its creation time and what is not given.
		{w, &q.saveRepo, `INSERT INTO repos (` + rows.RepoColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET url = excluded.url,
				url_credential = CASE WHEN excluded.url_credential IS NOT NULL THEN excluded.url_credential
					WHEN excluded.url = url THEN url_credential END,
				branches = excluded.branches, default_branch = excluded.default_branch, depth = excluded.depth,
				keep_superseded = excluded.keep_superseded, max_running = excluded.max_running, build_timeout = excluded.build_timeout, priority = excluded.priority,
				forge = excluded.forge, api_url = excluded.api_url,
				webhook_secret = coalesce(excluded.webhook_secret, webhook_secret),
				forge_token = coalesce(excluded.forge_token, forge_token)`},
		{w, &q.removeRepo, `DELETE FROM repos WHERE name = ?`},
		{w, &q.setSecret, `INSERT INTO secrets (repo, key, value, updated) SELECT name, ?2, ?3, ?4 FROM repos WHERE name = ?1
			ON CONFLICT (repo, key) DO UPDATE SET value = excluded.value, updated = excluded.updated`},
		{w, &q.removeSecret, `DELETE FROM secrets WHERE repo = ? AND key = ?`},

		{w, &q.savePool, `INSERT INTO pool_state (id, state, updated) VALUES (1, ?1, ?2)
			ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated = excluded.updated`},
		{r, &q.getPool, `SELECT state FROM pool_state WHERE id = 1`},

		{w, &q.wcurrent, `SELECT state, attempt, waiting FROM builds WHERE id = ?`},
		// The build first made for a forge event, since a time (by builds_event).
		{w, &q.wsameEvent, `SELECT id FROM builds WHERE repo = ?1 AND event_key = ?2 AND event_key <> '' AND created >= ?3
			ORDER BY created LIMIT 1`},

		{r, &q.getBuild, `SELECT ` + rows.BuildColumns + ` FROM builds WHERE id = ?`},
		{r, &q.queued, `SELECT ` + rows.BuildColumns + ` FROM builds WHERE state = 'queued' ORDER BY created, id`},
		{r, &q.running, `SELECT ` + rows.BuildColumns + ` FROM builds WHERE state = 'running' ORDER BY created, id`},
		{r, &q.lastSeq, `SELECT m.last_seq FROM builds AS b
			LEFT JOIN event_marks AS m ON m.build_id = b.id AND m.attempt = ?2 WHERE b.id = ?1`},
		{r, &q.events, `SELECT attempt, seq, event FROM events WHERE build_id = ? ORDER BY attempt, seq`},
		// By the primary key: the ids from the prefix up to its last follower.
		{r, &q.buildIDs, `SELECT id FROM builds WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT ?3`},
		{r, &q.buildExists, `SELECT EXISTS (SELECT 1 FROM builds WHERE id = ?)`},
		{r, &q.getAgent, `SELECT ` + rows.AgentColumns + ` FROM agents WHERE id = ?`},
		{r, &q.listAgents, `SELECT ` + rows.AgentColumns + ` FROM agents WHERE removed = 0 ORDER BY name, id`},
		{r, &q.getToken, `SELECT ` + rows.TokenColumns + ` FROM tokens WHERE hash = ?`},
		// A prefix of an id: the index is searched from the prefix on.
		{r, &q.tokensByID, `SELECT ` + rows.TokenColumns + ` FROM tokens WHERE id >= ?1 AND substr(id, 1, length(?1)) = ?1 ORDER BY id`},
		{r, &q.listTokens, `SELECT ` + rows.TokenColumns + ` FROM tokens ORDER BY created, hash`},
		{r, &q.buildOfDelivery, `SELECT id FROM builds WHERE delivery = ?`},
		{r, &q.getRepo, `SELECT ` + rows.RepoColumns + ` FROM repos WHERE name = ?`},
		{r, &q.listRepos, `SELECT ` + rows.RepoColumns + ` FROM repos ORDER BY name`},
		{r, &q.repoByURL, `SELECT ` + rows.RepoColumns + ` FROM repos WHERE url = ? ORDER BY name LIMIT 1`},
		{r, &q.listSecrets, `SELECT repo, key, updated FROM secrets WHERE repo = ? ORDER BY key`},
		{r, &q.secrets, `SELECT key, value FROM secrets WHERE repo = ?`},
	} {
		st, err := p.db.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("%s: %w", strings.Join(strings.Fields(p.sql), " "), err)
		}
		*p.s = st
	}
	return nil
}
