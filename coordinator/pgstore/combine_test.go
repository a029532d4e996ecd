package pgstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/internal/pgtest"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// Changes asked for while one is under way go together in one
// transaction, and each keeps its own answer: when the server refuses one
// (a duplicate build), it alone fails and the others apply.
func TestChangesAskedAtOnceShareATransactionAndKeepTheirOwnAnswers(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	dsn := srv.NewDatabase(t)
	s := openOn(t, dsn)
	build := func(id string) coordinator.Build {
		return coordinator.Build{ID: id, Repo: "r", Source: coordinator.Source{URL: "u"}}
	}
	must(t, s.CreateBuild(ctx, build("held")))
	must(t, s.CreateBuild(ctx, build("dup")))

	// round asks for n builds, plus ids in extra, while the sender waits
	// for a build another session locked, then lets it go; it returns
	// each build's answer.
	round := func(name string, n int, extra ...string) map[string]error {
		tx := lockBuild(t, dsn, "held")
		held := make(chan error, 1)
		go func() { held <- s.SetWaiting(ctx, "held", name) }()
		waitForLock(t, s.db, "the first change", "UPDATE builds%")
		ids := append([]string(nil), extra...)
		for i := range n {
			ids = append(ids, fmt.Sprintf("%s-%02d", name, i))
		}
		before := s.writes.asked.Load()
		var mu sync.Mutex
		answers := map[string]error{}
		var all sync.WaitGroup
		for _, id := range ids {
			all.Add(1)
			go func() {
				defer all.Done()
				err := s.CreateBuild(ctx, build(id))
				mu.Lock()
				answers[id] = err
				mu.Unlock()
			}()
		}
		wait.Within(t, 30*time.Second, "every change to be asked for", func() bool {
			return s.writes.asked.Load() == before+int64(len(ids))
		})
		must(t, tx.Rollback(ctx))
		must(t, <-held)
		all.Wait()
		return answers
	}

	const n = 40
	for id, err := range round("together", n) {
		if err != nil {
			t.Errorf("build %s: %v", id, err)
		}
	}
	// Rows one transaction inserted carry its id (xmin).
	var transactions int
	must(t, s.db.QueryRow(ctx, `SELECT count(DISTINCT xmin::text) FROM builds WHERE id LIKE 'together-%'`).Scan(&transactions))
	if transactions >= n {
		t.Errorf("%d builds asked for at once took %d transactions: none went together", n, transactions)
	}

	for id, err := range round("alone", n, "dup") {
		switch {
		case id == "dup" && (err == nil || !isConstraint(err)):
			t.Errorf("the duplicate build: %v, want the server's refusal", err)
		case id != "dup" && err != nil:
			t.Errorf("build %s failed with the duplicate: %v", id, err)
		}
	}
	var stored int
	must(t, s.db.QueryRow(ctx, `SELECT count(*) FROM builds WHERE id LIKE 'alone-%'`).Scan(&stored))
	if stored != n {
		t.Errorf("%d of the %d builds asked for beside the duplicate are stored", stored, n)
	}
}
