package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/leader"
	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/pgtest"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// electedPair is two stores of coordinators on one new database, both
// elected (fenced).
func electedPair(t *testing.T) (*Store, *Store) {
	dsn := pgtest.Start(t).NewDatabase(t)
	a, b := openOn(t, dsn), openOn(t, dsn)
	a.Elected()
	b.Elected()
	return a, b
}

// Two coordinators on one database: one holds the role; when its lease
// runs out the other takes it with the next term, and from then on the
// first one's changes are refused, however sure it still is that it leads.
func TestTheRoleMovesAndFencesTheOldLeader(t *testing.T) {
	ctx := context.Background()
	a, b := electedPair(t)
	ma := leader.Member{ID: "a", GRPC: "a:7433", HTTP: "a:7480", Started: time.Now()}
	mb := leader.Member{ID: "b", GRPC: "b:7433", HTTP: "b:7480", Started: time.Now()}
	const ttl = 300 * time.Millisecond

	h, err := a.Claim(ctx, ma, ttl)
	if err != nil || h.ID != "a" || h.Term != 1 {
		t.Fatalf("first claim: %+v %v, want a at term 1", h, err)
	}
	a.Fence("a", 1)
	if h, err := b.Claim(ctx, mb, ttl); err != nil || h.ID != "a" || h.GRPC != "a:7433" {
		t.Fatalf("b's claim while a holds it: %+v %v, want a with its address", h, err)
	}
	for _, id := range []string{"x", "y"} {
		must(t, a.CreateBuild(ctx, coordinator.Build{ID: id, Repo: "r", Source: coordinator.Source{URL: "u"}}))
	}
	must(t, a.Assign(ctx, "x", 1, "agent", time.Now().Add(time.Minute)))
	if err := b.Assign(ctx, "y", 1, "agent", time.Now().Add(time.Minute)); !errors.Is(err, coordinator.ErrNotLeader) {
		t.Fatalf("a standby's Assign: %v, want ErrNotLeader", err)
	}

	// a stops renewing (paused): b takes the role once it has expired.
	wait.Within(t, 10*time.Second, "b to take the role", func() bool {
		h, err := b.Claim(ctx, mb, ttl)
		return err == nil && h.ID == "b"
	})
	h, _ = b.Claim(ctx, mb, ttl)
	if h.Term != 2 {
		t.Errorf("b's term = %d, want 2", h.Term)
	}
	b.Fence("b", 2)
	// a wakes up, sure it still leads at term 1: nothing it does applies.
	for what, err := range map[string]error{
		"Assign":  a.Assign(ctx, "y", 1, "agent", time.Now().Add(time.Minute)),
		"Renew":   a.Renew(ctx, "x", 1, time.Now().Add(time.Hour)),
		"Finish":  a.Finish(ctx, "x", 1, events.Success, "done"),
		"Requeue": a.Requeue(ctx, "x", 1, coordinator.ReasonAgentLost),
		"Waiting": a.SetWaiting(ctx, "y", "no agent"),
	} {
		if !errors.Is(err, coordinator.ErrNotLeader) {
			t.Errorf("the old leader's %s: %v, want ErrNotLeader", what, err)
		}
	}
	if _, err := a.AppendEvent(ctx, coordinator.StoredEvent{BuildID: "x", Attempt: 1, Seq: 1, Event: events.Event{Type: events.JobStart, Job: "j"}}); !errors.Is(err, coordinator.ErrNotLeader) {
		t.Errorf("the old leader's AppendEvent: %v, want ErrNotLeader", err)
	}
	x, err := b.GetBuild(ctx, "x")
	must(t, err)
	if x.State != coordinator.Running || x.Attempt != 1 || x.Waiting != "" {
		t.Errorf("the old leader changed build x: %+v", x)
	}
	if es, _ := b.Events(ctx, "x"); len(es) != 0 {
		t.Errorf("the old leader stored events: %v", es)
	}
	// The new leader's changes apply; a's next claim finds b.
	must(t, b.Assign(ctx, "y", 1, "agent", time.Now().Add(time.Minute)))
	if h, err := a.Claim(ctx, ma, ttl); err != nil || h.ID != "b" || h.Term != 2 {
		t.Errorf("a's claim after b took over: %+v %v", h, err)
	}

	ms, err := a.Members(ctx, time.Minute, time.Minute)
	must(t, err)
	if len(ms) != 2 || ms[0].ID != "a" || ms[0].Leader || !ms[1].Leader || ms[1].Term != 2 || ms[1].GRPC != "b:7433" || ms[0].Gone || ms[1].Gone {
		t.Errorf("members: %+v, want a standing by and b leading at term 2", ms)
	}
	// Not seen within a moment: gone.
	if ms, err := a.Members(ctx, time.Minute, time.Microsecond); err != nil || len(ms) != 2 || !ms[0].Gone || !ms[1].Gone {
		t.Errorf("members not seen within a microsecond: %+v %v, want both gone", ms, err)
	}
	// b resigns: a takes over at once, without waiting for the lease.
	must(t, b.Resign(ctx, "b", 2))
	if h, err := a.Claim(ctx, ma, time.Hour); err != nil || h.ID != "a" || h.Term != 3 {
		t.Errorf("a's claim after b resigned: %+v %v, want a at term 3", h, err)
	}
}

// Stores that never claim (one coordinator, or a tool) are not fenced.
func TestAStoreNotElectedIsNotFenced(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	a, b := openOn(t, dsn), openOn(t, dsn)
	a.Elected()
	if _, err := a.Claim(ctx, leader.Member{ID: "a"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	a.Fence("a", 1)
	must(t, b.CreateBuild(ctx, coordinator.Build{ID: "x", Repo: "r", Source: coordinator.Source{URL: "u"}}))
	must(t, b.Assign(ctx, "x", 1, "agent", time.Now().Add(time.Minute)))
}

func openOn(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// lockBuild locks the build's row in a transaction of another session,
// which the test ends (or the session's end does).
func lockBuild(t *testing.T, dsn, id string) pgx.Tx {
	t.Helper()
	ctx := context.Background()
	locker, err := pgx.Connect(ctx, dsn)
	must(t, err)
	t.Cleanup(func() { _ = locker.Close(ctx) })
	tx, err := locker.Begin(ctx)
	must(t, err)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM builds WHERE id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}
	return tx
}

// waitForLock waits until one statement like query waits for a lock.
func waitForLock(t *testing.T, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, what, query string) {
	t.Helper()
	wait.Within(t, 30*time.Second, what+" to wait for a lock", func() bool {
		var n int
		_ = db.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`, query).Scan(&n)
		return n == 1
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// QueuedSince gives the builds that entered the queue after a mark (new
// ones, and ones queued again, but not those assigned meanwhile) with
// their entries' numbers, and those of the missing numbers asked for.
func TestQueuedSinceGivesTheEntriesAfterTheMark(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	s := openOn(t, srv.NewDatabase(t))
	for _, id := range []string{"a", "b"} {
		must(t, s.CreateBuild(ctx, coordinator.Build{ID: id, Repo: "r", Source: coordinator.Source{URL: "u"}}))
	}
	bs, ns, err := s.QueuedSince(ctx, 0, nil)
	if err != nil || len(bs) != 2 || bs[0].ID != "a" || bs[1].ID != "b" || len(ns) != 2 || ns[0] >= ns[1] {
		t.Fatalf("QueuedSince(0) = %v, %v, %v", bs, ns, err)
	}
	mark := ns[1]
	must(t, s.Assign(ctx, "a", 1, "agent", time.Now().Add(time.Minute)))
	must(t, s.CreateBuild(ctx, coordinator.Build{ID: "c", Repo: "r", Source: coordinator.Source{URL: "u"}}))
	must(t, s.Requeue(ctx, "a", 1, coordinator.ReasonAgentLost))
	bs, next, err := s.QueuedSince(ctx, mark, nil)
	if err != nil || len(bs) != 2 || bs[0].ID != "c" || bs[1].ID != "a" || len(next) != 2 || next[0] <= mark {
		t.Errorf("QueuedSince(mark) = %v, %v, %v; want c then a, after %d", bs, next, err, mark)
	}
	if bs, again, _ := s.QueuedSince(ctx, next[1], nil); len(bs) != 0 || len(again) != 0 {
		t.Errorf("nothing new: %v, %v", bs, again)
	}
	// Asked for by number below the mark: b, still queued; not a, whose
	// first entry is over.
	bs, got, err := s.QueuedSince(ctx, next[1], []int64{ns[0], ns[1]})
	if err != nil || len(bs) != 1 || bs[0].ID != "b" || len(got) != 1 || got[0] != ns[1] {
		t.Errorf("QueuedSince(missing) = %v, %v, %v; want b", bs, got, err)
	}
}

// SetWaitingMany says one reason for many queued builds; a build no
// longer queued keeps what it had.
func TestSetWaitingManySetsItForTheQueuedOnes(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	s := openOn(t, srv.NewDatabase(t))
	for _, id := range []string{"a", "b", "c"} {
		must(t, s.CreateBuild(ctx, coordinator.Build{ID: id, Repo: "r", Source: coordinator.Source{URL: "u"}}))
	}
	must(t, s.Assign(ctx, "c", 1, "agent", time.Now().Add(time.Minute)))
	must(t, s.SetWaitingMany(ctx, []string{"a", "b", "c", "missing"}, "no agent has room"))
	for id, want := range map[string]string{"a": "no agent has room", "b": "no agent has room", "c": ""} {
		if b, err := s.GetBuild(ctx, id); err != nil || b.Waiting != want {
			t.Errorf("build %s waits for %q (%v), want %q", id, b.Waiting, err, want)
		}
	}
}

// A leader's change that waits for a build's lock while the role moves to
// another term is refused, or else the move waits for it: it never lands
// after the new term began.
func TestAChangeWaitingForALockMeetsTheNewTerm(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	a := openOn(t, dsn)
	a.Elected()
	if _, err := a.Claim(ctx, leader.Member{ID: "a"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	a.Fence("a", 1)
	must(t, a.CreateBuild(ctx, coordinator.Build{ID: "x", Repo: "r", Source: coordinator.Source{URL: "u"}}))
	tx := lockBuild(t, dsn, "x")
	assigned := make(chan error, 1)
	go func() { assigned <- a.Assign(ctx, "x", 1, "agent", time.Now().Add(time.Minute)) }()
	watcher, err := pgx.Connect(ctx, dsn)
	must(t, err)
	defer watcher.Close(ctx)
	waitForLock(t, watcher, "the Assign", "UPDATE builds%")
	// a's lease runs out (a stopped process), and b claims the role.
	if _, err := watcher.Exec(ctx, `UPDATE leader SET expires = '-infinity' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	b := openOn(t, dsn)
	moved := make(chan time.Time, 1)
	var done atomic.Bool
	go func() {
		if h, err := b.Claim(ctx, leader.Member{ID: "b"}, time.Hour); err != nil || h.ID != "b" || h.Term != 2 {
			t.Errorf("b's claim: %+v, %v; want b at term 2", h, err)
		}
		done.Store(true)
		moved <- time.Now()
	}()
	// The move has run, or waits for the Assign, before the lock goes.
	wait.Within(t, 30*time.Second, "the move to term 2 to run or wait", func() bool {
		var n int
		_ = watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FROM leader%FOR UPDATE'`).Scan(&n)
		return n == 1 || done.Load()
	})
	released := time.Now()
	must(t, tx.Rollback(ctx))
	err = <-assigned
	movedAt := <-moved
	switch {
	case errors.Is(err, coordinator.ErrNotLeader): // it met term 2
	case err == nil && movedAt.After(released): // term 2 waited for it
	default:
		t.Errorf("the Assign of term 1: %v; the move to term 2 did not wait for it: it landed in term 2", err)
	}
}

// A build created running, and the pool's state, are a leader's changes
// too: refused to a store that does not hold the role.
func TestABuildCreatedRunningAndThePoolAreFenced(t *testing.T) {
	ctx := context.Background()
	a, b := electedPair(t)
	if _, err := a.Claim(ctx, leader.Member{ID: "a"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	a.Fence("a", 1)
	running := coordinator.Build{ID: "r", Repo: "r", Source: coordinator.Source{URL: "u"}, State: coordinator.Running, Attempt: 1, Agent: "ag"}
	if err := b.CreateBuild(ctx, running); !errors.Is(err, coordinator.ErrNotLeader) {
		t.Errorf("a standby's running build: %v, want ErrNotLeader", err)
	}
	if err := b.SavePool(ctx, pool.State{Desired: 9}); !errors.Is(err, coordinator.ErrNotLeader) {
		t.Errorf("a standby's pool state: %v, want ErrNotLeader", err)
	}
	// A webhook's build sent at once to an agent, with and without an event.
	for i, event := range []string{"push refs/heads/main abc", ""} {
		delivered := running
		delivered.ID = fmt.Sprint("d", i)
		d := coordinator.Delivery{Forge: "github", ID: delivered.ID, Event: event, Since: time.Now().Add(-time.Hour)}
		if _, err := b.CreateDeliveredBuild(ctx, delivered, d); !errors.Is(err, coordinator.ErrNotLeader) {
			t.Errorf("a standby's running build of a delivery (event %q): %v, want ErrNotLeader", event, err)
		}
		if _, err := a.CreateDeliveredBuild(ctx, delivered, d); err != nil {
			t.Errorf("the leader's running build of a delivery (event %q): %v", event, err)
		}
	}
	must(t, b.CreateBuild(ctx, coordinator.Build{ID: "q", Repo: "r", Source: coordinator.Source{URL: "u"}})) // queued: anyone
	must(t, a.CreateBuild(ctx, running))
	must(t, a.SavePool(ctx, pool.State{Desired: 2}))
	if st, err := b.LoadPool(ctx); err != nil || st.Desired != 2 {
		t.Errorf("pool state %+v, %v; want the leader's", st, err)
	}
}

// A build's message may quote its own output: a NUL byte in it, which
// PostgreSQL refuses in text, does not keep the build from ending.
func TestANULInAMessageDoesNotKeepABuildFromEnding(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	s := openOn(t, srv.NewDatabase(t))
	must(t, s.CreateBuild(ctx, coordinator.Build{ID: "x", Repo: "r", Source: coordinator.Source{URL: "u"}, Trigger: "push by \x00"}))
	must(t, s.Assign(ctx, "x", 1, "agent", time.Now().Add(time.Minute)))
	must(t, s.Finish(ctx, "x", 1, events.Failure, "job test: printed \x00 and failed"))
	b, err := s.GetBuild(ctx, "x")
	must(t, err)
	if b.State != coordinator.Ended || b.Message != "job test: printed \uFFFD and failed" || b.Trigger != "push by \uFFFD" {
		t.Errorf("stored %q, %q (%s)", b.Message, b.Trigger, b.State)
	}
	// A name holds none: refused in words.
	err = s.CreateBuild(ctx, coordinator.Build{ID: "y", Repo: "r", Source: coordinator.Source{URL: "u", Branch: "ma\x00in"}})
	if err == nil || !strings.Contains(err.Error(), "NUL byte") {
		t.Errorf("a branch with a NUL: %v", err)
	}
}

// An entry numbered before another can commit after it: read after the
// later one, it shows below the mark, and is found when asked for by its
// number (what coordinator.queueEntries asks).
func TestAnEntryThatCommitsLateIsFoundByItsNumber(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	s := openOn(t, srv.NewDatabase(t))
	tx, err := s.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	args, err := s.buildArgs(coordinator.Build{ID: "late", Repo: "r", Source: coordinator.Source{URL: "u"}}, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, insertBuild, args...); err != nil {
		t.Fatal(err)
	}
	must(t, s.CreateBuild(ctx, coordinator.Build{ID: "early", Repo: "r", Source: coordinator.Source{URL: "u"}}))
	bs, ns, err := s.QueuedSince(ctx, 0, nil)
	if err != nil || len(bs) != 1 || bs[0].ID != "early" {
		t.Fatalf("before the late one commits: %v, %v", bs, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if bs, _, _ := s.QueuedSince(ctx, ns[0], nil); len(bs) != 0 {
		t.Fatalf("after the mark: %v, want none (the late one is numbered before it)", bs)
	}
	bs, got, err := s.QueuedSince(ctx, ns[0], []int64{ns[0] - 1})
	if err != nil || len(bs) != 1 || bs[0].ID != "late" || got[0] != ns[0]-1 {
		t.Errorf("asked for by number: %v %v %v, want the late one", bs, got, err)
	}
}

// A coordinator stopped in the middle of a transaction (a paused VM)
// holds the role's row no longer than the idle limit: another takes the
// role. The limit is short here (the DSN's); by default it is
// idleInTransaction.
func TestACoordinatorStoppedInATransactionDoesNotHoldTheRole(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	a := openOn(t, dsn)
	var limit string
	must(t, a.db.QueryRow(ctx, `SHOW idle_in_transaction_session_timeout`).Scan(&limit))
	if limit != idleInTransaction {
		t.Errorf("idle_in_transaction_session_timeout is %q, want %q", limit, idleInTransaction)
	}
	if _, err := a.Claim(ctx, leader.Member{ID: "a"}, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	stopped := openOn(t, dsn+"&idle_in_transaction_session_timeout=200ms")
	conn, err := stopped.db.Acquire(ctx)
	must(t, err)
	defer conn.Release()
	if _, err := conn.Exec(ctx, `BEGIN`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT 1 FROM leader WHERE id = 1 FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	// The session now waits for its client, which never comes back.
	b := openOn(t, dsn)
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	h, err := b.Claim(cctx, leader.Member{ID: "b"}, time.Hour)
	if err != nil || h.ID != "b" {
		t.Errorf("b's claim while a session held the role's row: %+v, %v; want b to lead", h, err)
	}
}
