package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migrations are the schema's versions, in order: migrations[i] takes the
// database from version i to version i+1. Append only: never edit or
// reorder one that has shipped, write a new one instead.
//
// Conventions: times are unix nanoseconds in INTEGER columns (0 is the zero
// time); maps are JSON objects in TEXT columns (NULL when empty).
var migrations = []string{
	// 1: builds, their events, agents and tokens.
	`
CREATE TABLE builds (
	id            TEXT PRIMARY KEY,
	repo          TEXT NOT NULL DEFAULT '',
	source_url    TEXT NOT NULL DEFAULT '',
	source_branch TEXT NOT NULL DEFAULT '',
	source_commit TEXT NOT NULL DEFAULT '',
	params        TEXT,
	labels        TEXT,
	state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'ended')),
	result        TEXT NOT NULL DEFAULT '',
	message       TEXT NOT NULL DEFAULT '',
	attempt       INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
	agent         TEXT NOT NULL DEFAULT '',
	lease_expires INTEGER NOT NULL DEFAULT 0,
	waiting       TEXT NOT NULL DEFAULT '',
	created       INTEGER NOT NULL,
	started       INTEGER NOT NULL DEFAULT 0,
	ended         INTEGER NOT NULL DEFAULT 0
);
-- Queued() and Running(): oldest first; ListBuilds by state, newest first.
CREATE INDEX builds_state_created ON builds (state, created, id);
-- ListBuilds by repository, newest first.
CREATE INDEX builds_repo_created ON builds (repo, created, id);
-- ListBuilds of everything, newest first.
CREATE INDEX builds_created ON builds (created, id);

-- One row per event of an attempt; the event is events.Event as JSON.
CREATE TABLE events (
	build_id TEXT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
	attempt  INTEGER NOT NULL CHECK (attempt >= 1),
	seq      INTEGER NOT NULL CHECK (seq >= 1),
	event    TEXT NOT NULL,
	PRIMARY KEY (build_id, attempt, seq)
) WITHOUT ROWID;

-- last_seq is the contiguous high-water mark of an attempt's events:
-- 1..last_seq are all stored. No row: 0.
CREATE TABLE event_marks (
	build_id TEXT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
	attempt  INTEGER NOT NULL,
	last_seq INTEGER NOT NULL,
	PRIMARY KEY (build_id, attempt)
) WITHOUT ROWID;

-- The mark moves in the statement that stores an event, when the event
-- extends it: to the end of the run of stored seqs that starts at the new
-- one (the first stored seq from it on whose successor is not stored). A
-- seq stored past a gap leaves the mark; the mark walks over it later,
-- once, when the gap fills. Two statements rather than an upsert: the
-- event is stored with INSERT OR IGNORE, whose conflict policy would
-- override one inside the trigger.
CREATE TRIGGER events_advance_mark AFTER INSERT ON events
WHEN NEW.seq = coalesce((SELECT last_seq FROM event_marks
	WHERE build_id = NEW.build_id AND attempt = NEW.attempt), 0) + 1
BEGIN
	UPDATE event_marks SET last_seq = (
		SELECT e.seq FROM events AS e
		WHERE e.build_id = NEW.build_id AND e.attempt = NEW.attempt AND e.seq >= NEW.seq
			AND NOT EXISTS (SELECT 1 FROM events AS n
				WHERE n.build_id = NEW.build_id AND n.attempt = NEW.attempt AND n.seq = e.seq + 1)
		ORDER BY e.seq LIMIT 1)
	WHERE build_id = NEW.build_id AND attempt = NEW.attempt;
	INSERT INTO event_marks (build_id, attempt, last_seq)
	SELECT NEW.build_id, NEW.attempt, (
		SELECT e.seq FROM events AS e
		WHERE e.build_id = NEW.build_id AND e.attempt = NEW.attempt AND e.seq >= NEW.seq
			AND NOT EXISTS (SELECT 1 FROM events AS n
				WHERE n.build_id = NEW.build_id AND n.attempt = NEW.attempt AND n.seq = e.seq + 1)
		ORDER BY e.seq LIMIT 1)
	WHERE NOT EXISTS (SELECT 1 FROM event_marks WHERE build_id = NEW.build_id AND attempt = NEW.attempt);
END;

CREATE TABLE agents (
	id              TEXT PRIMARY KEY,
	name            TEXT NOT NULL DEFAULT '',
	labels          TEXT,
	credential_hash TEXT NOT NULL DEFAULT '',
	cordoned        INTEGER NOT NULL DEFAULT 0,
	joined          INTEGER NOT NULL DEFAULT 0,
	last_seen       INTEGER NOT NULL DEFAULT 0
);

-- Tokens by the SHA-256 (hex) of the token: the token itself is never kept.
CREATE TABLE tokens (
	hash    TEXT PRIMARY KEY,
	kind    TEXT NOT NULL,
	created INTEGER NOT NULL
) WITHOUT ROWID;
`,
	// 2: forges: what started a build, its webhook delivery (seen once),
	// registered repositories and their secrets (sealed values).
	`
ALTER TABLE builds ADD COLUMN trigger_desc TEXT NOT NULL DEFAULT '';
ALTER TABLE builds ADD COLUMN forge TEXT NOT NULL DEFAULT '';
-- "forge:delivery id" of the webhook delivery that made the build.
ALTER TABLE builds ADD COLUMN delivery TEXT;
CREATE UNIQUE INDEX builds_delivery ON builds (delivery) WHERE delivery IS NOT NULL;

CREATE TABLE repos (
	name           TEXT PRIMARY KEY,
	url            TEXT NOT NULL,
	branches       TEXT,
	forge          TEXT NOT NULL DEFAULT '',
	api_url        TEXT NOT NULL DEFAULT '',
	webhook_secret BLOB,
	forge_token    BLOB,
	created        INTEGER NOT NULL
);
CREATE INDEX repos_url ON repos (url);

CREATE TABLE secrets (
	repo    TEXT NOT NULL REFERENCES repos (name) ON DELETE CASCADE,
	key     TEXT NOT NULL,
	value   BLOB NOT NULL,
	updated INTEGER NOT NULL,
	PRIMARY KEY (repo, key)
) WITHOUT ROWID;
`,
	// 3: the pool scaler's state (one JSON document: instances it tracks,
	// its cool-downs and last decisions), so a restart goes on from it.
	`
CREATE TABLE pool_state (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	state   TEXT NOT NULL,
	updated INTEGER NOT NULL
);
`,
	// 4: the tag a build is of (a tag push), for its `when` conditions.
	`
ALTER TABLE builds ADD COLUMN source_tag TEXT NOT NULL DEFAULT '';
`,
	// 5: the forge event a delivered build was made for (forge.Event.Key),
	// so that the event delivered again under another id within the hour
	// makes no second build.
	`
ALTER TABLE builds ADD COLUMN event_key TEXT NOT NULL DEFAULT '';
CREATE INDEX builds_event ON builds (repo, event_key, created) WHERE event_key <> '';
`,
	// 6: why each attempt after the first exists (agent lost, agent
	// restarted, lease expired, retried by admin): a JSON object from the
	// attempt's number to its reason, written when the build is queued again.
	`
ALTER TABLE builds ADD COLUMN attempt_reasons TEXT;
`,
	// 7: the user information of a repository's clone URL, sealed, kept
	// apart from the URL shown.
	`
ALTER TABLE repos ADD COLUMN url_credential BLOB;
`,
	// 8: tokens get a short id (their hash's first hex digits: what 'tokens
	// ls' shows and 'tokens revoke' takes), an expiry and when they were
	// last used; agents a time of removal.
	`
ALTER TABLE tokens ADD COLUMN id TEXT NOT NULL DEFAULT '';
UPDATE tokens SET id = substr(hash, 1, 12);
CREATE INDEX tokens_id ON tokens (id);
ALTER TABLE tokens ADD COLUMN expires INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN last_used INTEGER NOT NULL DEFAULT 0;
-- When an agent was removed (agents rm): its row stays, so that its
-- credential is refused as removed, not taken for unknown.
ALTER TABLE agents ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
`,
	// 9: cache scopes: a build's pull request and the scope its caches are
	// written to and read from; a repository's default branch.
	`
ALTER TABLE builds ADD COLUMN pull_request INTEGER NOT NULL DEFAULT 0;
ALTER TABLE builds ADD COLUMN cache_scope TEXT NOT NULL DEFAULT '';
ALTER TABLE builds ADD COLUMN cache_fallback TEXT NOT NULL DEFAULT '';
ALTER TABLE repos ADD COLUMN default_branch TEXT NOT NULL DEFAULT '';
`,
	// 10: a pull request from a fork, whose build gets no secrets.
	`
ALTER TABLE builds ADD COLUMN fork INTEGER NOT NULL DEFAULT 0;
`,
	// 11: a repository's checkout depth (NULL: the agent's default).
	`
ALTER TABLE repos ADD COLUMN depth INTEGER;
`,
	// 12: a repository whose superseded builds are kept running.
	`
ALTER TABLE repos ADD COLUMN keep_superseded INTEGER NOT NULL DEFAULT 0;
`,
	// 13: a repository's bound on its builds running at once (0: none).
	`
ALTER TABLE repos ADD COLUMN max_running INTEGER NOT NULL DEFAULT 0;
`,
	// 14: a repository's build timeout, in nanoseconds (0: the
	// coordinator's).
	`
ALTER TABLE repos ADD COLUMN build_timeout INTEGER NOT NULL DEFAULT 0;
`,
	// 15: the builds of a branch not ended, which a newer push supersedes
	// (ListBuilds with Active and Branch).
	`
CREATE INDEX builds_active_branch ON builds (repo, source_branch, created) WHERE state IN ('queued', 'running');
`,
	// 16: priorities: a build's, and a repository's for its builds that
	// ask for none (-1 low, 0 normal, 1 high).
	`
ALTER TABLE builds ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repos ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
`,
}

// migrate brings the database up to len(ms), in one transaction: either
// every pending migration is applied or none is. Versions already applied
// are skipped, so running it again is a no-op. A database whose version is
// newer than len(ms) (written by a newer program) is refused unchanged.
func migrate(ctx context.Context, db *sql.DB, ms []string) (err error) {
	// db's transactions begin IMMEDIATE: two processes opening the same
	// file at once take turns here instead of both applying migrations.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY,
	applied INTEGER NOT NULL
)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var have, count int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0), count(*) FROM schema_migrations`).Scan(&have, &count); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if have > len(ms) {
		return fmt.Errorf("migrate: the database's schema is version %d, newer than this program knows (%d): it was written by a newer monkeyci; run that version, or use another data directory", have, len(ms))
	}
	if count != have {
		return fmt.Errorf("migrate: schema_migrations is inconsistent: %d rows up to version %d", count, have)
	}
	now := time.Now().UnixNano()
	for v := have + 1; v <= len(ms); v++ {
		if _, err := tx.ExecContext(ctx, ms[v-1]); err != nil {
			return fmt.Errorf("migrate: apply version %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied) VALUES (?, ?)`, v, now); err != nil {
			return fmt.Errorf("migrate: record version %d: %w", v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
