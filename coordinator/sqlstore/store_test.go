package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
)

// t0 is a fixed moment; builds are created at t0 plus a few seconds.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "state.db") }

func openStore(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newStore(t testing.TB) *Store { return openStore(t, dbPath(t)) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// build is a queued build created at t0 + sec seconds.
func build(id string, sec int) coordinator.Build {
	return coordinator.Build{
		ID: id, Repo: "repo-" + id, Source: coordinator.Source{URL: "file:///src/" + id},
		State: coordinator.Queued, Created: t0.Add(time.Duration(sec) * time.Second),
	}
}

func ids(bs []coordinator.Build) []string {
	out := []string{}
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func get(t testing.TB, s *Store, id string) coordinator.Build {
	t.Helper()
	b, err := s.GetBuild(context.Background(), id)
	must(t, err)
	return b
}

func TestOpenSetsPragmas(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, c := range []struct{ pragma, want string }{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
		{"synchronous", "1"}, // NORMAL
	} {
		var got string
		must(t, s.w.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got))
		if got != c.want {
			t.Errorf("writer PRAGMA %s = %q, want %q", c.pragma, got, c.want)
		}
	}
	var qo string
	must(t, s.r.QueryRowContext(ctx, "PRAGMA query_only").Scan(&qo))
	if qo != "1" {
		t.Errorf("readers are not query_only: %q", qo)
	}
	if _, err := s.r.ExecContext(ctx, `DELETE FROM builds`); err == nil {
		t.Error("a reader connection could write")
	}
}

func TestOpenDurable(t *testing.T) {
	s, err := OpenWith(dbPath(t), Options{Durable: true})
	must(t, err)
	defer s.Close()
	var got string
	must(t, s.w.QueryRow("PRAGMA synchronous").Scan(&got))
	if got != "2" {
		t.Errorf("synchronous = %s, want 2 (FULL)", got)
	}
}

func TestOpenOddPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a dir?with#odd%20chars")
	must(t, os.MkdirAll(dir, 0o755))
	path := filepath.Join(dir, "state.db")
	s := openStore(t, path)
	must(t, s.CreateBuild(context.Background(), build("b1", 0)))
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not where it was asked to be: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil {
		t.Error("opening a directory as the database worked")
	}
	notDB := filepath.Join(dir, "junk.db")
	must(t, os.WriteFile(notDB, []byte(strings.Repeat("not a database ", 400)), 0o644))
	if _, err := Open(notDB); err == nil {
		t.Error("opening a file that is not a database worked")
	}
}

func schemaVersions(t *testing.T, path string) []int {
	t.Helper()
	s := openStore(t, path)
	rows, err := s.r.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	must(t, err)
	defer rows.Close()
	var vs []int
	for rows.Next() {
		var v int
		must(t, rows.Scan(&v))
		vs = append(vs, v)
	}
	must(t, rows.Err())
	return vs
}

func TestMigrationsRunOnce(t *testing.T) {
	path := dbPath(t)
	want := []int{}
	for i := range migrations {
		want = append(want, i+1)
	}
	for i := range 3 {
		s, err := Open(path)
		must(t, err)
		must(t, s.CreateBuild(context.Background(), build(fmt.Sprint("b", i), i)))
		must(t, s.Close())
	}
	if got := schemaVersions(t, path); !reflect.DeepEqual(got, want) {
		t.Errorf("schema versions after 3 opens = %v, want %v", got, want)
	}
	s := openStore(t, path)
	bs, err := s.ListBuilds(context.Background(), coordinator.BuildFilter{})
	must(t, err)
	if len(bs) != 3 {
		t.Errorf("reopening lost builds: %v", ids(bs))
	}
	// Migrating again by hand is a no-op too.
	must(t, migrate(context.Background(), s.w, migrations))
	var n int
	must(t, s.w.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n))
	if n != len(migrations) {
		t.Errorf("%d schema_migrations rows, want %d", n, len(migrations))
	}
}

func TestMigrationUpgrade(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	must(t, s.CreateBuild(context.Background(), build("b1", 0)))
	// A version this program does not have yet, adding a column.
	next := append(append([]string{}, migrations...), `ALTER TABLE builds ADD COLUMN upgrade_probe INTEGER NOT NULL DEFAULT 0`)
	must(t, migrate(context.Background(), s.w, next))
	must(t, migrate(context.Background(), s.w, next))
	var v, probe int
	must(t, s.w.QueryRow(`SELECT max(version) FROM schema_migrations`).Scan(&v))
	must(t, s.w.QueryRow(`SELECT upgrade_probe FROM builds WHERE id = 'b1'`).Scan(&probe))
	if v != len(next) || probe != 0 {
		t.Errorf("after the upgrade: version %d, upgrade_probe %d; want %d, 0", v, probe, len(next))
	}
}

// A build stored before version 4 reads back with no tag.
func TestMigrationAddsSourceTag(t *testing.T) {
	path := dbPath(t)
	db, err := sql.Open("sqlite", path)
	must(t, err)
	must(t, migrate(context.Background(), db, migrations[:3]))
	_, err = db.Exec(`INSERT INTO builds (id, repo, source_url, source_branch, source_commit, state, created)
		VALUES ('old', 'r', 'file:///r', 'main', 'abc', 'queued', 1)`)
	must(t, err)
	must(t, db.Close())
	s := openStore(t, path)
	old := get(t, s, "old")
	if old.Source != (coordinator.Source{URL: "file:///r", Branch: "main", Commit: "abc"}) {
		t.Errorf("after the upgrade: source %+v", old.Source)
	}
}

func TestMigrationFailureLeavesNothing(t *testing.T) {
	s := newStore(t)
	bad := append(append([]string{}, migrations...), `CREATE TABLE extra (x INTEGER)`, `THIS IS NOT SQL`)
	err := migrate(context.Background(), s.w, bad)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprint("version ", len(migrations)+2)) {
		t.Fatalf("a broken migration: %v", err)
	}
	var n int
	must(t, s.w.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'extra'`).Scan(&n))
	if n != 0 {
		t.Error("the migration before the broken one stayed applied")
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := dbPath(t)
	s, err := Open(path)
	must(t, err)
	_, err = s.w.Exec(`INSERT INTO schema_migrations (version, applied) VALUES (?, 0)`, len(migrations)+1)
	must(t, err)
	must(t, s.Close())
	_, err = Open(path)
	if err == nil {
		t.Fatal("a database of a newer schema was opened")
	}
	for _, w := range []string{"newer", fmt.Sprint("version ", len(migrations)+1), path} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the error %q does not say %q", err, w)
		}
	}
}

// TestDurability fills a store, closes it, and finds everything on reopening.
func TestDurability(t *testing.T) {
	path := dbPath(t)
	ctx := context.Background()
	s, err := Open(path)
	must(t, err)
	must(t, s.CreateBuild(ctx, coordinator.Build{ID: "q", Repo: "r", Params: map[string]string{"k": "v"}, Created: t0}))
	must(t, s.CreateBuild(ctx, build("run", 1)))
	must(t, s.CreateBuild(ctx, build("end", 2)))
	must(t, s.SetWaiting(ctx, "q", "no agent"))
	must(t, s.Assign(ctx, "run", 1, "ag", t0.Add(time.Hour)))
	must(t, s.Assign(ctx, "end", 1, "ag", t0.Add(time.Hour)))
	for seq := int64(1); seq <= 5; seq++ {
		if seq == 4 {
			continue // a gap
		}
		_, err := s.AppendEvent(ctx, coordinator.StoredEvent{BuildID: "run", Attempt: 1, Seq: seq, Event: events.Event{Type: events.JobStart, Job: fmt.Sprint("j", seq)}})
		must(t, err)
	}
	must(t, s.Finish(ctx, "end", 1, events.Failure, "boom"))
	must(t, s.SaveAgent(ctx, coordinator.Agent{ID: "ag", Name: "agent", Joined: t0}))
	must(t, s.SaveToken(ctx, coordinator.Token{Hash: "hash-of-a-token", Kind: coordinator.TokenAdmin, Expires: t0}))
	before := snapshot(t, s)
	must(t, s.Close())

	s = openStore(t, path)
	after := snapshot(t, s)
	if !reflect.DeepEqual(before, after) {
		t.Errorf("reopened store differs:\nbefore %+v\n after %+v", before, after)
	}
	if last, _ := s.LastSeq(ctx, "run", 1); last != 3 {
		t.Errorf("LastSeq after reopening = %d, want 3", last)
	}
	// The reopened store goes on where it stopped.
	_, err = s.AppendEvent(ctx, coordinator.StoredEvent{BuildID: "run", Attempt: 1, Seq: 4})
	must(t, err)
	if last, _ := s.LastSeq(ctx, "run", 1); last != 5 {
		t.Errorf("LastSeq after filling the gap = %d, want 5", last)
	}
}

type state struct {
	Builds []coordinator.Build
	Events map[string][]coordinator.StoredEvent
	Agents []coordinator.Agent
	Tokens []coordinator.Token
}

func snapshot(t *testing.T, s *Store) state {
	t.Helper()
	ctx := context.Background()
	var st state
	var err error
	st.Builds, err = s.ListBuilds(ctx, coordinator.BuildFilter{})
	must(t, err)
	st.Events = map[string][]coordinator.StoredEvent{}
	for _, b := range st.Builds {
		st.Events[b.ID], err = s.Events(ctx, b.ID)
		must(t, err)
	}
	st.Agents, err = s.ListAgents(ctx)
	must(t, err)
	st.Tokens, err = s.ListTokens(ctx)
	must(t, err)
	return st
}

// Commits never checkpoint (the background checkpointer does), so a
// change's caller never waits for the WAL's copy into the database file.
func TestCommitsLeaveCheckpointsToTheCheckpointer(t *testing.T) {
	s := newStore(t)
	var pages int
	must(t, s.w.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&pages))
	if pages != 0 {
		t.Errorf("the writer checkpoints every %d pages, want never", pages)
	}
	var busy, log, done int
	must(t, s.cp.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done))
	if log != done {
		t.Errorf("a checkpoint with no writer copied %d of %d WAL frames", done, log)
	}
}
