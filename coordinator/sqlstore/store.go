// Package sqlstore keeps the coordinator's state in an SQLite database file
// (modernc.org/sqlite: pure Go, no cgo). It implements coordinator.Store.
//
// The database runs in WAL mode. Writes go through one connection, so they
// are serialised in this process (and BEGIN IMMEDIATE serialises them with
// any other process); reads go through a pool of read-only connections and
// proceed while a write is under way.
//
// Fencing: every change that names an attempt is one UPDATE whose WHERE
// names the build, the attempt and the state the change needs; when it
// changes no row the build is read in the same transaction to say why
// (coordinator.ErrNotFound or coordinator.ErrStale, wrapped).
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/monkeyci/monkeyci/coordinator"
)

var _ coordinator.Store = (*Store)(nil)

// Store is a coordinator.Store in an SQLite file. It is safe for concurrent
// use.
type Store struct {
	w   *sql.DB // one connection: every write goes through it
	r   *sql.DB // read-only connections
	now func() time.Time
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
	sync := "NORMAL"
	if o.Durable {
		sync = "FULL"
	}
	timeout := fmt.Sprint(busyTimeout.Milliseconds())
	w, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_busy_timeout": {timeout},
		"_journal_mode": {"WAL"},
		"_synchronous":  {sync},
		"_foreign_keys": {"1"},
		"_txlock":       {"immediate"},
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
	s := &Store{w: w, r: r, now: o.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// dsn is a file: URI for the driver: the path escaped, the options in the
// query.
func dsn(abs string, q url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), OmitHost: true, RawQuery: q.Encode()}
	return u.String()
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// write runs fn in a write transaction (BEGIN IMMEDIATE) and commits it
// when fn returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Times are unix nanoseconds; 0 is the zero time.

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Maps are JSON objects; an empty map is NULL and comes back nil.

func mapJSON(m map[string]string) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func jsonMap(s sql.NullString) (map[string]string, error) {
	if !s.Valid || s.String == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}
