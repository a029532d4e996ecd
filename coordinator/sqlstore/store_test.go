package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
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
	next := append(append([]string{}, migrations...), `ALTER TABLE builds ADD COLUMN priority INTEGER NOT NULL DEFAULT 0`)
	must(t, migrate(context.Background(), s.w, next))
	must(t, migrate(context.Background(), s.w, next))
	var v, prio int
	must(t, s.w.QueryRow(`SELECT max(version) FROM schema_migrations`).Scan(&v))
	must(t, s.w.QueryRow(`SELECT priority FROM builds WHERE id = 'b1'`).Scan(&prio))
	if v != len(next) || prio != 0 {
		t.Errorf("after the upgrade: version %d, priority %d; want %d, 0", v, prio, len(next))
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

func TestCreateAndGetBuild(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	full := coordinator.Build{
		ID: "full", Repo: "github.com/x/y",
		Source:  coordinator.Source{URL: "https://example.invalid/x/y.git", Branch: "main", Commit: "abc123", Tag: "v1.0"},
		Params:  map[string]string{"A": "1", "quote": `"'\n`},
		Labels:  map[string]string{"os": "linux"},
		State:   coordinator.Ended,
		Result:  events.Failure,
		Message: "it broke", Attempt: 2, Agent: "agent-1",
		LeaseExpires: t0.Add(time.Minute), Waiting: "",
		Created: t0, Started: t0.Add(time.Second), Ended: t0.Add(2 * time.Second),
		PullRequest: 42, Cache: coordinator.CacheScope{Scope: "branch:x", Fallback: "branch:main"},
	}
	must(t, s.CreateBuild(ctx, full))
	if got := get(t, s, "full"); !reflect.DeepEqual(got, full) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, full)
	}

	before := time.Now()
	must(t, s.CreateBuild(ctx, coordinator.Build{ID: "bare", Params: map[string]string{}}))
	bare := get(t, s, "bare")
	if bare.State != coordinator.Queued || bare.Created.Before(before.Add(-time.Second)) || bare.Params != nil || bare.Labels != nil {
		t.Errorf("defaults: %+v", bare)
	}

	for _, c := range []struct {
		name string
		b    coordinator.Build
		want string
	}{
		{"duplicate id", full, "exists already"},
		{"no id", coordinator.Build{}, "no id"},
		{"bad state", coordinator.Build{ID: "x", State: "sleeping"}, "unknown state"},
		{"negative attempt", coordinator.Build{ID: "y", Attempt: -1}, "negative attempt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := s.CreateBuild(ctx, c.b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("CreateBuild: %v, want an error saying %q", err, c.want)
			}
		})
	}

	_, err := s.GetBuild(ctx, "nope")
	if !errors.Is(err, coordinator.ErrNotFound) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("GetBuild of a missing build: %v", err)
	}
}

func TestListBuilds(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for i, b := range []coordinator.Build{
		{ID: "a", Repo: "r1", Created: t0.Add(1 * time.Second)},
		{ID: "b", Repo: "r2", Created: t0.Add(2 * time.Second)},
		{ID: "c", Repo: "r1", Created: t0.Add(3 * time.Second), State: coordinator.Ended},
		{ID: "d", Repo: "r1", Created: t0.Add(4 * time.Second), State: coordinator.Running, Attempt: 1},
		{ID: "e", Repo: "r2", Created: t0.Add(4 * time.Second)}, // same time as d: by id
	} {
		_ = i
		must(t, s.CreateBuild(ctx, b))
	}
	for _, c := range []struct {
		name string
		f    coordinator.BuildFilter
		want []string
	}{
		{"all", coordinator.BuildFilter{}, []string{"e", "d", "c", "b", "a"}},
		{"limit", coordinator.BuildFilter{Limit: 2}, []string{"e", "d"}},
		{"repo", coordinator.BuildFilter{Repo: "r1"}, []string{"d", "c", "a"}},
		{"state", coordinator.BuildFilter{State: coordinator.Queued}, []string{"e", "b", "a"}},
		{"repo and state", coordinator.BuildFilter{Repo: "r2", State: coordinator.Queued, Limit: 1}, []string{"e"}},
		{"nothing", coordinator.BuildFilter{Repo: "r3"}, []string{}},
		{"negative limit is none", coordinator.BuildFilter{Limit: -1}, []string{"e", "d", "c", "b", "a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bs, err := s.ListBuilds(ctx, c.f)
			must(t, err)
			if got := ids(bs); !reflect.DeepEqual(got, c.want) {
				t.Errorf("ListBuilds(%+v) = %v, want %v", c.f, got, c.want)
			}
		})
	}
}

func TestQueuedAndRunning(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	// Created out of order; z and y at the same moment (by id then).
	for _, b := range []coordinator.Build{build("late", 9), build("z", 5), build("y", 5), build("early", 1), build("run1", 3), build("run2", 2)} {
		must(t, s.CreateBuild(ctx, b))
	}
	lease := time.Now().Add(time.Minute)
	must(t, s.Assign(ctx, "run1", 1, "ag", lease))
	must(t, s.Assign(ctx, "run2", 1, "ag", lease))
	q, err := s.Queued(ctx)
	must(t, err)
	if got, want := ids(q), []string{"early", "y", "z", "late"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Queued = %v, want %v", got, want)
	}
	r, err := s.Running(ctx)
	must(t, err)
	if got, want := ids(r), []string{"run2", "run1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Running = %v, want %v", got, want)
	}
	// A requeued build keeps its place: it was created first.
	must(t, s.Requeue(ctx, "run2", 1, coordinator.ReasonAgentLost))
	q, err = s.Queued(ctx)
	must(t, err)
	if got, want := ids(q), []string{"early", "run2", "y", "z", "late"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Queued after a requeue = %v, want %v", got, want)
	}
}

func TestSetWaiting(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	must(t, s.CreateBuild(ctx, build("b", 0)))
	must(t, s.SetWaiting(ctx, "b", "no agent is connected"))
	must(t, s.SetWaiting(ctx, "b", "no agent is connected")) // unchanged: fine
	if got := get(t, s, "b").Waiting; got != "no agent is connected" {
		t.Errorf("Waiting = %q", got)
	}
	must(t, s.Assign(ctx, "b", 1, "ag", time.Now().Add(time.Minute)))
	if got := get(t, s, "b").Waiting; got != "" {
		t.Errorf("Assign kept Waiting %q", got)
	}
	if err := s.SetWaiting(ctx, "b", "busy"); !errors.Is(err, coordinator.ErrStale) {
		t.Errorf("SetWaiting of a running build: %v", err)
	}
	if err := s.SetWaiting(ctx, "nope", "busy"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("SetWaiting of a missing build: %v", err)
	}
}

// TestLifecycleAndFencing drives one build through every change, in order,
// with the refusals a stale or misplaced change meets on the way.
func TestLifecycleAndFencing(t *testing.T) {
	now := t0.Add(time.Hour)
	s, err := OpenWith(dbPath(t), Options{Now: func() time.Time { return now }})
	must(t, err)
	defer s.Close()
	ctx := context.Background()
	must(t, s.CreateBuild(ctx, build("b", 0)))
	lease1, lease2 := t0.Add(2*time.Hour), t0.Add(3*time.Hour)

	type check func(t *testing.T, b coordinator.Build)
	is := func(state coordinator.State, attempt int, agent string) check {
		return func(t *testing.T, b coordinator.Build) {
			if b.State != state || b.Attempt != attempt || b.Agent != agent {
				t.Errorf("build is %s attempt %d on %q, want %s attempt %d on %q", b.State, b.Attempt, b.Agent, state, attempt, agent)
			}
		}
	}
	steps := []struct {
		name string
		do   func() error
		err  error  // nil, ErrStale or ErrNotFound
		says string // in the error
		then check
	}{
		{"assign skipping an attempt", func() error { return s.Assign(ctx, "b", 2, "a1", lease1) }, coordinator.ErrStale, "queued at attempt 1", is(coordinator.Queued, 0, "")},
		{"renew before assign", func() error { return s.Renew(ctx, "b", 0, lease1) }, coordinator.ErrStale, "is queued at attempt 0", nil},
		{"finish a queued build as attempt 1", func() error { return s.Finish(ctx, "b", 1, events.Success, "") }, coordinator.ErrStale, "running at attempt 1", nil},
		{"retry a queued build", func() error { return s.Retry(ctx, "b", coordinator.ReasonRetried) }, coordinator.ErrStale, "needs it ended", nil},
		{"assign attempt 1", func() error { return s.Assign(ctx, "b", 1, "a1", lease1) }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Running, 1, "a1")(t, b)
			if !b.LeaseExpires.Equal(lease1) || !b.Started.Equal(now) {
				t.Errorf("lease %v started %v", b.LeaseExpires, b.Started)
			}
		}},
		{"assign attempt 1 again", func() error { return s.Assign(ctx, "b", 1, "a2", lease1) }, coordinator.ErrStale, "is running at attempt 1, the change needs it queued at attempt 0", is(coordinator.Running, 1, "a1")},
		{"assign attempt 2 while running", func() error { return s.Assign(ctx, "b", 2, "a2", lease1) }, coordinator.ErrStale, "running", is(coordinator.Running, 1, "a1")},
		{"renew a stale attempt", func() error { return s.Renew(ctx, "b", 0, lease2) }, coordinator.ErrStale, "running at attempt 0", nil},
		{"renew attempt 1", func() error { return s.Renew(ctx, "b", 1, lease2) }, nil, "", func(t *testing.T, b coordinator.Build) {
			if !b.LeaseExpires.Equal(lease2) {
				t.Errorf("lease %v, want %v", b.LeaseExpires, lease2)
			}
		}},
		{"finish a queued build while running", func() error { return s.Finish(ctx, "b", 0, events.Canceled, "") }, coordinator.ErrStale, "needs it queued", nil},
		{"requeue a wrong attempt", func() error { return s.Requeue(ctx, "b", 2, coordinator.ReasonAgentLost) }, coordinator.ErrStale, "attempt 2", nil},
		{"requeue attempt 1", func() error { return s.Requeue(ctx, "b", 1, coordinator.ReasonAgentLost) }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Queued, 1, "")(t, b)
			if !b.LeaseExpires.IsZero() || !b.Started.IsZero() {
				t.Errorf("requeue kept lease %v started %v", b.LeaseExpires, b.Started)
			}
		}},
		{"requeue attempt 1 again", func() error { return s.Requeue(ctx, "b", 1, coordinator.ReasonAgentLost) }, coordinator.ErrStale, "is queued at attempt 1", nil},
		{"renew the requeued attempt", func() error { return s.Renew(ctx, "b", 1, lease2) }, coordinator.ErrStale, "queued", nil},
		{"finish the requeued attempt", func() error { return s.Finish(ctx, "b", 1, events.Success, "late") }, coordinator.ErrStale, "queued", nil},
		{"assign attempt 1 after the requeue", func() error { return s.Assign(ctx, "b", 1, "a2", lease1) }, coordinator.ErrStale, "queued at attempt 0", nil},
		{"assign attempt 2", func() error { return s.Assign(ctx, "b", 2, "a2", lease1) }, nil, "", is(coordinator.Running, 2, "a2")},
		{"renew old attempt 1", func() error { return s.Renew(ctx, "b", 1, lease2) }, coordinator.ErrStale, "running at attempt 2, the change needs it running at attempt 1", nil},
		{"finish old attempt 1", func() error { return s.Finish(ctx, "b", 1, events.Failure, "late") }, coordinator.ErrStale, "", is(coordinator.Running, 2, "a2")},
		{"finish attempt 2", func() error { return s.Finish(ctx, "b", 2, events.Success, "ok") }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Ended, 2, "a2")(t, b)
			if b.Result != events.Success || b.Message != "ok" || !b.Ended.Equal(now) || !b.LeaseExpires.IsZero() {
				t.Errorf("ended build: %+v", b)
			}
		}},
		{"finish attempt 2 again", func() error { return s.Finish(ctx, "b", 2, events.Failure, "again") }, coordinator.ErrStale, "is ended at attempt 2", func(t *testing.T, b coordinator.Build) {
			if b.Result != events.Success {
				t.Errorf("the second finish changed the result to %s", b.Result)
			}
		}},
		{"renew an ended build", func() error { return s.Renew(ctx, "b", 2, lease2) }, coordinator.ErrStale, "ended", nil},
		{"requeue an ended build", func() error { return s.Requeue(ctx, "b", 2, coordinator.ReasonAgentLost) }, coordinator.ErrStale, "ended", nil},
		{"retry", func() error { return s.Retry(ctx, "b", coordinator.ReasonRetried) }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Queued, 2, "")(t, b)
			if b.Result != "" || b.Message != "" || !b.Ended.IsZero() || !b.Started.IsZero() || !b.Created.Equal(t0) {
				t.Errorf("retried build: %+v", b)
			}
			// Why attempts 2 and 3 exist; the first needs no reason.
			if want := map[int]string{2: coordinator.ReasonAgentLost, 3: coordinator.ReasonRetried}; !maps.Equal(b.AttemptReasons, want) {
				t.Errorf("attempt reasons %v, want %v", b.AttemptReasons, want)
			}
		}},
		{"retry a queued build", func() error { return s.Retry(ctx, "b", coordinator.ReasonRetried) }, coordinator.ErrStale, "queued", nil},
		{"assign attempt 3", func() error { return s.Assign(ctx, "b", 3, "a1", lease1) }, nil, "", is(coordinator.Running, 3, "a1")},
		{"requeue attempt 3", func() error { return s.Requeue(ctx, "b", 3, coordinator.ReasonLeaseExpired) }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Queued, 3, "")(t, b)
			if got := b.AttemptReasons[4]; got != coordinator.ReasonLeaseExpired || len(b.AttemptReasons) != 3 {
				t.Errorf("attempt reasons %v, want attempt 4's %q beside the others", b.AttemptReasons, coordinator.ReasonLeaseExpired)
			}
		}},
		{"cancel the queued build (attempt 0 ends it whatever its attempt)", func() error { return s.Finish(ctx, "b", 0, events.Canceled, "canceled") }, nil, "", func(t *testing.T, b coordinator.Build) {
			is(coordinator.Ended, 3, "")(t, b)
			if b.Result != events.Canceled || b.Message != "canceled" {
				t.Errorf("canceled build: %+v", b)
			}
		}},
		{"cancel it again", func() error { return s.Finish(ctx, "b", 0, events.Canceled, "") }, coordinator.ErrStale, "is ended at attempt 3, the change needs it queued", nil},
		{"assign attempt 0", func() error { return s.Assign(ctx, "b", 0, "a1", lease1) }, nil, "attempts count from 1", nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			err := st.do()
			switch {
			case st.err == nil && st.says == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case st.err != nil && !errors.Is(err, st.err):
				t.Fatalf("error %v, want %v", err, st.err)
			case st.says != "" && (err == nil || !strings.Contains(err.Error(), st.says)):
				t.Fatalf("error %v, want one saying %q", err, st.says)
			}
			if err != nil && !strings.Contains(err.Error(), `build b`) {
				t.Errorf("the error %q does not name the build", err)
			}
			if st.then != nil {
				st.then(t, get(t, s, "b"))
			}
		})
	}
}

func TestChangesOfMissingBuilds(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	lease := time.Now()
	for name, do := range map[string]func() error{
		"Assign":     func() error { return s.Assign(ctx, "nope", 1, "a", lease) },
		"Renew":      func() error { return s.Renew(ctx, "nope", 1, lease) },
		"Requeue":    func() error { return s.Requeue(ctx, "nope", 1, coordinator.ReasonAgentLost) },
		"Finish":     func() error { return s.Finish(ctx, "nope", 1, events.Error, "") },
		"Finish 0":   func() error { return s.Finish(ctx, "nope", 0, events.Canceled, "") },
		"Retry":      func() error { return s.Retry(ctx, "nope", coordinator.ReasonRetried) },
		"SetWaiting": func() error { return s.SetWaiting(ctx, "nope", "x") },
		"AppendEvent": func() error {
			_, err := s.AppendEvent(ctx, coordinator.StoredEvent{BuildID: "nope", Attempt: 1, Seq: 1})
			return err
		},
		"LastSeq": func() error { _, err := s.LastSeq(ctx, "nope", 1); return err },
		"Events":  func() error { _, err := s.Events(ctx, "nope"); return err },
	} {
		if err := do(); !errors.Is(err, coordinator.ErrNotFound) || errors.Is(err, coordinator.ErrStale) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("%s of a missing build: %v, want ErrNotFound naming it", name, err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	s := newStore(t)
	must(t, s.CreateBuild(context.Background(), build("b", 0)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Assign(ctx, "b", 1, "a", time.Now()); err == nil {
		t.Error("Assign with a canceled context worked")
	}
	if err := s.CreateBuild(ctx, build("c", 0)); err == nil {
		t.Error("CreateBuild with a canceled context worked")
	}
	if b := get(t, s, "b"); b.State != coordinator.Queued {
		t.Errorf("the canceled Assign changed the build: %+v", b)
	}
	// The store still works after a canceled call.
	must(t, s.Assign(context.Background(), "b", 1, "a", time.Now()))
}

func TestAgents(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a1 := coordinator.Agent{ID: "id1", Name: "zeta", Labels: map[string]string{"os": "linux"}, CredentialHash: "h1", Joined: t0, LastSeen: t0.Add(time.Second)}
	a2 := coordinator.Agent{ID: "id2", Name: "alpha", Joined: t0}
	must(t, s.SaveAgent(ctx, a1))
	must(t, s.SaveAgent(ctx, a2))
	if got, err := s.GetAgent(ctx, "id1"); err != nil || !reflect.DeepEqual(got, a1) {
		t.Errorf("GetAgent = %+v, %v; want %+v", got, err, a1)
	}
	a1.Cordoned, a1.LastSeen, a1.Labels = true, t0.Add(time.Hour), nil
	must(t, s.SaveAgent(ctx, a1))
	if got, err := s.GetAgent(ctx, "id1"); err != nil || !reflect.DeepEqual(got, a1) {
		t.Errorf("GetAgent after an update = %+v, %v; want %+v", got, err, a1)
	}
	as, err := s.ListAgents(ctx)
	must(t, err)
	if !reflect.DeepEqual(as, []coordinator.Agent{a2, a1}) {
		t.Errorf("ListAgents = %+v", as)
	}
	if _, err := s.GetAgent(ctx, "nope"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("GetAgent of a missing agent: %v", err)
	}
	if err := s.SaveAgent(ctx, coordinator.Agent{}); err == nil {
		t.Error("an agent without an id was saved")
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
