package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are the schema's versions, in order: migrations[i] takes the
// database from version i to version i+1. Append only: never edit or
// reorder one that has shipped, write a new one instead.
//
// The columns and their encoding are sqlstore's (package rows: times in
// unix nanoseconds, maps as JSON text), so that `monkeyci migrate` copies a
// row as it is. Keys and names are compared byte by byte (COLLATE "C"),
// as SQLite compares them, whatever the database's own collation: id
// prefixes are looked up as ranges, and lists come in the same order from
// either store.
var migrations = []string{
	// 1: what sqlstore's eleven versions made.
	`
CREATE TABLE builds (
	id              TEXT COLLATE "C" PRIMARY KEY,
	repo            TEXT COLLATE "C" NOT NULL DEFAULT '',
	source_url      TEXT NOT NULL DEFAULT '',
	source_branch   TEXT NOT NULL DEFAULT '',
	source_commit   TEXT NOT NULL DEFAULT '',
	source_tag      TEXT NOT NULL DEFAULT '',
	params          TEXT,
	labels          TEXT,
	state           TEXT NOT NULL CHECK (state IN ('queued', 'running', 'ended')),
	result          TEXT NOT NULL DEFAULT '',
	message         TEXT NOT NULL DEFAULT '',
	attempt         INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
	agent           TEXT NOT NULL DEFAULT '',
	lease_expires   BIGINT NOT NULL DEFAULT 0,
	waiting         TEXT NOT NULL DEFAULT '',
	created         BIGINT NOT NULL,
	started         BIGINT NOT NULL DEFAULT 0,
	ended           BIGINT NOT NULL DEFAULT 0,
	trigger_desc    TEXT NOT NULL DEFAULT '',
	forge           TEXT NOT NULL DEFAULT '',
	-- "forge:delivery id" of the webhook delivery that made the build.
	delivery        TEXT UNIQUE,
	-- The forge event it was made for (forge.Event.Key).
	event_key       TEXT NOT NULL DEFAULT '',
	-- Why each attempt after the first exists: a JSON object by attempt.
	attempt_reasons TEXT,
	pull_request    INTEGER NOT NULL DEFAULT 0,
	cache_scope     TEXT NOT NULL DEFAULT '',
	cache_fallback  TEXT NOT NULL DEFAULT '',
	fork            BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX builds_state_created ON builds (state, created, id);
CREATE INDEX builds_repo_created ON builds (repo, created, id);
CREATE INDEX builds_created ON builds (created, id);
CREATE INDEX builds_event ON builds (repo, event_key, created) WHERE event_key <> '';

CREATE TABLE events (
	build_id TEXT COLLATE "C" NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
	attempt  INTEGER NOT NULL CHECK (attempt >= 1),
	seq      BIGINT NOT NULL CHECK (seq >= 1),
	event    TEXT NOT NULL,
	PRIMARY KEY (build_id, attempt, seq)
);

-- last_seq is the contiguous high-water mark of an attempt's events:
-- 1..last_seq are all stored. No row: 0.
CREATE TABLE event_marks (
	build_id TEXT COLLATE "C" NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
	attempt  INTEGER NOT NULL,
	last_seq BIGINT NOT NULL,
	PRIMARY KEY (build_id, attempt)
);

-- The mark moves in the statement that stores an event, when the event
-- extends it: to the end of the run of stored seqs that starts at the new
-- one. A seq stored past a gap leaves the mark; the mark walks over it
-- later, once, when the gap fills. The insert locks the build's row
-- (AppendEvent), so the events of one build are stored one at a time and
-- each sees the ones before it.
CREATE FUNCTION events_advance_mark() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	mark BIGINT;
	upto BIGINT;
BEGIN
	SELECT last_seq INTO mark FROM event_marks WHERE build_id = NEW.build_id AND attempt = NEW.attempt;
	IF NEW.seq <> coalesce(mark, 0) + 1 THEN
		RETURN NULL;
	END IF;
	SELECT e.seq INTO upto FROM events AS e
	WHERE e.build_id = NEW.build_id AND e.attempt = NEW.attempt AND e.seq >= NEW.seq
		AND NOT EXISTS (SELECT 1 FROM events AS n
			WHERE n.build_id = NEW.build_id AND n.attempt = NEW.attempt AND n.seq = e.seq + 1)
	ORDER BY e.seq LIMIT 1;
	INSERT INTO event_marks (build_id, attempt, last_seq) VALUES (NEW.build_id, NEW.attempt, upto)
	ON CONFLICT (build_id, attempt) DO UPDATE SET last_seq = excluded.last_seq;
	RETURN NULL;
END
$$;
CREATE TRIGGER events_advance_mark AFTER INSERT ON events
FOR EACH ROW EXECUTE FUNCTION events_advance_mark();

CREATE TABLE agents (
	id              TEXT COLLATE "C" PRIMARY KEY,
	name            TEXT COLLATE "C" NOT NULL DEFAULT '',
	labels          TEXT,
	credential_hash TEXT NOT NULL DEFAULT '',
	cordoned        BOOLEAN NOT NULL DEFAULT false,
	joined          BIGINT NOT NULL DEFAULT 0,
	last_seen       BIGINT NOT NULL DEFAULT 0,
	removed         BIGINT NOT NULL DEFAULT 0
);

-- Tokens by the SHA-256 (hex) of the token: the token itself is never
-- kept. id is the hash's first hex digits.
CREATE TABLE tokens (
	hash      TEXT COLLATE "C" PRIMARY KEY,
	id        TEXT COLLATE "C" NOT NULL DEFAULT '',
	kind      TEXT NOT NULL,
	created   BIGINT NOT NULL,
	expires   BIGINT NOT NULL DEFAULT 0,
	last_used BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tokens_id ON tokens (id);

CREATE TABLE repos (
	name           TEXT COLLATE "C" PRIMARY KEY,
	url            TEXT NOT NULL,
	branches       TEXT,
	forge          TEXT NOT NULL DEFAULT '',
	api_url        TEXT NOT NULL DEFAULT '',
	webhook_secret BYTEA,
	forge_token    BYTEA,
	created        BIGINT NOT NULL,
	url_credential BYTEA,
	default_branch TEXT NOT NULL DEFAULT '',
	depth          INTEGER
);
CREATE INDEX repos_url ON repos (url);

CREATE TABLE secrets (
	repo    TEXT COLLATE "C" NOT NULL REFERENCES repos (name) ON DELETE CASCADE,
	key     TEXT COLLATE "C" NOT NULL,
	value   BYTEA NOT NULL,
	updated BIGINT NOT NULL,
	PRIMARY KEY (repo, key)
);

-- The pool scaler's state: one JSON document.
CREATE TABLE pool_state (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	state   TEXT NOT NULL,
	updated BIGINT NOT NULL
);
`,
	// 2: the coordinators sharing the database and the leader's role
	// (package leader): a lease whose expiry is the database's clock, and
	// a term that grows with each new holder (the fencing number).
	`
CREATE TABLE coordinators (
	id        TEXT COLLATE "C" PRIMARY KEY,
	grpc_addr TEXT NOT NULL,
	http_addr TEXT NOT NULL,
	version   TEXT NOT NULL DEFAULT '',
	started   BIGINT NOT NULL,
	seen      TIMESTAMPTZ NOT NULL
);
CREATE TABLE leader (
	id      INTEGER PRIMARY KEY CHECK (id = 1),
	holder  TEXT COLLATE "C" NOT NULL,
	term    BIGINT NOT NULL,
	expires TIMESTAMPTZ NOT NULL
);
`,
	// 3: the logs of running attempts (Logs), so that what an agent sent
	// is acknowledged once it is in the database, and any coordinator
	// reads and follows it: a stream's stored size, the row its writers
	// lock, and its bytes in the chunks they came in.
	`
CREATE TABLE log_streams (
	build_id TEXT COLLATE "C" NOT NULL,
	attempt  INTEGER NOT NULL,
	job      TEXT COLLATE "C" NOT NULL,
	stream   TEXT COLLATE "C" NOT NULL,
	size     BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (build_id, attempt, job, stream)
);
CREATE TABLE log_chunks (
	build_id TEXT COLLATE "C" NOT NULL,
	attempt  INTEGER NOT NULL,
	job      TEXT COLLATE "C" NOT NULL,
	stream   TEXT COLLATE "C" NOT NULL,
	start    BIGINT NOT NULL,
	data     BYTEA NOT NULL,
	PRIMARY KEY (build_id, attempt, job, stream, start)
);
`,
	// 4: the order builds entered the queue in (QueuedSince): a leader
	// takes up the builds other coordinators queued without reading the
	// whole queue again.
	`
CREATE SEQUENCE builds_queued_seq;
ALTER TABLE builds ADD COLUMN queued_seq BIGINT NOT NULL DEFAULT nextval('builds_queued_seq');
CREATE INDEX builds_queued ON builds (queued_seq) WHERE state = 'queued';
-- Room in each page for a build's next versions: most changes of a build
-- (its lease, why it waits) touch no indexed column, and then stay on its
-- page without a new entry in each index (heap-only tuples).
ALTER TABLE builds SET (fillfactor = 70);
`,
	// 5: a repository whose superseded builds are kept running.
	`
ALTER TABLE repos ADD COLUMN keep_superseded BOOLEAN NOT NULL DEFAULT false;
`,
	// 6: a repository's bound on its builds running at once (0: none).
	`
ALTER TABLE repos ADD COLUMN max_running INTEGER NOT NULL DEFAULT 0;
`,
	// 7: a repository's build timeout, in nanoseconds (0: the
	// coordinator's).
	`
ALTER TABLE repos ADD COLUMN build_timeout BIGINT NOT NULL DEFAULT 0;
`,
	// 8: the builds of a branch not ended, which a newer push supersedes
	// (ListBuilds with Active and Branch).
	`
CREATE INDEX builds_active_branch ON builds (repo, source_branch, created) WHERE state IN ('queued', 'running');
`,
	// 9: priorities: a build's, and a repository's for its builds that
	// ask for none (-1 low, 0 normal, 1 high).
	`
ALTER TABLE builds ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE repos ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
`,
}

// migrateLock is the advisory lock under which the schema changes: two
// coordinators starting at once on one database take turns.
const migrateLock = 0x6d6f6e6b6579 // "monkey"

// migrate brings the database up to len(ms) in one transaction: every
// pending migration applies, or none does. A database whose version is
// newer than len(ms) (written by a newer program) is refused unchanged.
func migrate(ctx context.Context, db *pgxpool.Pool, ms []string) error {
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version INTEGER PRIMARY KEY,
	applied BIGINT NOT NULL
)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var have, count int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0), count(*) FROM schema_migrations`).Scan(&have, &count); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if have > len(ms) {
			return fmt.Errorf("the database's schema is version %d, newer than this program knows (%d): it was written by a newer monkeyci; run that version", have, len(ms))
		}
		if count != have {
			return fmt.Errorf("schema_migrations is inconsistent: %d rows up to version %d", count, have)
		}
		now := time.Now().UnixNano()
		for v := have + 1; v <= len(ms); v++ {
			if _, err := tx.Exec(ctx, ms[v-1]); err != nil {
				return fmt.Errorf("apply version %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)`, v, now); err != nil {
				return fmt.Errorf("record version %d: %w", v, err)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("schema: %w", err)
	}
	return err
}
