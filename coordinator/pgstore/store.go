// Package pgstore keeps the coordinator's state in PostgreSQL (pgx), so
// that several coordinators can share it: one leads, the others stand by
// and serve, and every change any of them makes is in the database before
// it is acknowledged. It implements coordinator.Store as sqlstore does,
// with the same columns and encoding (package rows).
//
// Fencing: every change that names an attempt is one UPDATE whose WHERE
// names the build, the attempt and the state the change needs. PostgreSQL
// takes the build's row lock for it, and a change that waited for another
// one checks its WHERE again against what that one wrote, so of two
// racing changes exactly one applies. When a change applies to no row,
// the build is read to say why (coordinator.ErrNotFound or
// coordinator.ErrStale, wrapped).
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
)

var _ coordinator.Store = (*Store)(nil)

// Store is a coordinator.Store in a PostgreSQL database. It is safe for
// concurrent use, by several processes too.
type Store struct {
	db  *pgxpool.Pool
	now func() time.Time
	// writes sends the single-statement changes, combined as they pile up.
	writes *combiner

	// The role (leader.go): whether the leader's changes are fenced, and
	// the term this store's coordinator holds (nil: none).
	elected atomic.Bool
	leading atomic.Pointer[term]
}

// Options tune Open; the zero value is what Open uses.
type Options struct {
	// Now is the clock for the times the store sets itself (Started,
	// Ended, token creation); time.Now when nil.
	Now func() time.Time
}

// defaultConns bounds the pool's connections unless the DSN says
// (pool_max_conns): enough for the dispatcher, the agents' reports and
// the API at once, few enough for several coordinators on one server.
const defaultConns = 16

// warmConns are kept open however idle the coordinator is (unless the DSN
// says pool_min_conns): a standby that a burst of deliveries reaches
// should not open a connection for each first (some milliseconds each,
// while the deliveries wait).
const warmConns = 4

// idleInTransaction is how long the server keeps a session that waits, in
// the middle of a transaction, for its coordinator (unless the DSN says
// idle_in_transaction_session_timeout): a coordinator stopped there (a
// paused VM, SIGSTOP) would hold its locks, the role's row among them, and
// stop the others, until the connection dies.
const idleInTransaction = "5s"

// sessionDefaults are the server settings of each session, unless the DSN
// sets them.
var sessionDefaults = map[string]string{
	"idle_in_transaction_session_timeout": idleInTransaction,
	// A statement is planned for its arguments and the tables as they are
	// now, at each run. The server's default keeps a session's statement
	// on one generic plan after five runs; a coordinator on a new database
	// made those plans while builds was a few rows, when a build looked up
	// by its id and state is as cheap through the index on (state,
	// created, id) as through its key, and kept that plan as the table
	// grew: each event and end then walked every running build's entry,
	// dead ones included (20,000 builds: 1 ms a change, paced dispatch's
	// p99 from 13 to 400 ms). Planning these short statements costs less
	// than that walk from a few hundred builds on.
	"plan_cache_mode": "force_custom_plan",
}

// writeTimeout bounds a change once it has started: it runs to its end
// whatever its caller's context does meanwhile (so the caller never has
// to guess whether it applied), but not forever on a lost connection.
const writeTimeout = 30 * time.Second

// Open connects to the database dsn names (postgres://...) and brings its
// schema up to date.
func Open(ctx context.Context, dsn string) (*Store, error) { return OpenWith(ctx, dsn, Options{}) }

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dsn string, o Options) (*Store, error) {
	name := Redacted(dsn)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", name, err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = defaultConns
	}
	if !strings.Contains(dsn, "pool_min_conns") {
		cfg.MinConns = min(warmConns, cfg.MaxConns)
	}
	for name, value := range sessionDefaults {
		if _, set := cfg.ConnConfig.RuntimeParams[name]; !set {
			cfg.ConnConfig.RuntimeParams[name] = value
		}
	}
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", name, err)
	}
	if err := migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("database %s: %w", name, err)
	}
	s := &Store{db: db, now: o.Now, writes: newCombiner(db)}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Redacted is a DSN fit to show: its password hidden.
func Redacted(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(a DSN that is not a URL)"
	}
	return u.Redacted()
}

// Close closes the connections, once the calls under way are done.
func (s *Store) Close() error {
	s.writes.close()
	s.db.Close()
	return nil
}

// writing is the context a change runs under: none at all once ctx has
// ended, else one that outlives ctx (see writeTimeout).
func writing(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	return wctx, cancel, nil
}

// exec runs one change, a single statement, and says how many rows it
// changed. Changes asked for at the same time are sent together (see
// combiner); once sent, a change runs to its end whatever ctx does.
func (s *Store) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	return s.writes.exec(ctx, sql, args...)
}

// collect scans every row a query returned with scan.
func collect[T any](rows pgx.Rows, err error, scan func(rows.Scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// isConstraint reports a constraint violation (a duplicate key...).
func isConstraint(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && strings.HasPrefix(pe.Code, "23")
}

// isBadText reports text PostgreSQL refuses (a NUL byte, 22021).
func isBadText(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "22021"
}

// remove runs a DELETE; no row deleted is coordinator.ErrNotFound.
func (s *Store) remove(ctx context.Context, what, sql string, args ...any) error {
	n, err := s.exec(ctx, sql, args...)
	if err == nil && n == 0 {
		err = fmt.Errorf("%s: %w", what, coordinator.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("remove %w", err)
	}
	return nil
}
