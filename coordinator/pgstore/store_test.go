package pgstore

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/internal/pgtest"
)

// A session that first ran a change of a build while builds held a few
// rows still finds the build by its key once the table has grown: the
// plan is made at each run (sessionDefaults), not kept from the small
// table, where the index on (state, created, id) looked as cheap and each
// run would walk every running build's entry.
func TestALookupByIDUsesTheKeyOnceTheTableHasGrown(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	s := openOn(t, srv.NewDatabase(t))
	conn, err := s.db.Acquire(ctx)
	must(t, err)
	defer conn.Release()

	running := func(from, to int) {
		t.Helper()
		_, err := conn.Exec(ctx, `INSERT INTO builds (id, state, attempt, created)
			SELECT 'b-' || n, 'running', 1, n FROM generate_series($1::int, $2::int) AS n`, from, to)
		must(t, err)
	}
	// Finish's change, as a prepared statement of this session, run past
	// the server's five runs before it settles on a generic plan.
	const finish = `UPDATE builds SET state = 'ended', result = $3 WHERE id = $1 AND attempt = $2 AND state = 'running'`
	_, err = conn.Conn().Prepare(ctx, "finish", finish)
	must(t, err)
	running(1, 8)
	for n := 1; n <= 8; n++ {
		_, err := conn.Exec(ctx, "finish", fmt.Sprintf("b-%d", n), 1, "success")
		must(t, err)
	}
	running(9, 5000)

	var plan strings.Builder
	rs, err := conn.Query(ctx, `EXPLAIN EXECUTE finish('b-4000', 1, 'success')`)
	must(t, err)
	for rs.Next() {
		var line string
		must(t, rs.Scan(&line))
		plan.WriteString(line + "\n")
	}
	must(t, rs.Err())
	if !strings.Contains(plan.String(), "builds_pkey") {
		t.Errorf("with 5,000 builds, a build's change is planned as\n%s\nwant a lookup by builds_pkey", plan.String())
	}
}

// The DSN's own settings win over the session defaults.
func TestTheDSNsSettingsWinOverTheSessionDefaults(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	s := openOn(t, srv.NewDatabase(t)+"&plan_cache_mode=auto")
	var mode, idle string
	must(t, s.db.QueryRow(ctx, `SELECT current_setting('plan_cache_mode'), current_setting('idle_in_transaction_session_timeout')`).Scan(&mode, &idle))
	if mode != "auto" || idle != idleInTransaction {
		t.Errorf("plan_cache_mode %q and idle_in_transaction_session_timeout %q, want the DSN's auto and the default %s", mode, idle, idleInTransaction)
	}
}
