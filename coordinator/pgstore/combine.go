package pgstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxCombined bounds how many changes share one transaction.
const maxCombined = 128

// errClosed is a change asked of a closed store.
var errClosed = errors.New("the store is closed")

// combiner makes the single-statement changes that goroutines ask for at
// the same time (one agent's event, another's build end, a heartbeat...)
// one transaction, sent in one round trip and committed once.
//
// Why: on a loaded coordinator PostgreSQL spends most of a small change on
// its round trip and its commit, not on the change: 20 inserts sent
// together in one transaction cost about a sixth of 20 sent one by one.
// Changes are combined only as they pile up, never held back waiting for
// company: one alone is sent alone, at once.
//
// One goroutine sends them, one transaction at a time, so combined
// transactions never wait for each other's row locks (two could each hold
// what the other wants: a deadlock). A combined change is as atomic as
// alone; what it reports is its own (rows changed, error): when the server
// refuses one change of a transaction, all are rolled back and each is
// then run alone, so one's error is never another's.
type combiner struct {
	db *pgxpool.Pool
	// changes are taken by the sending goroutine. Unbuffered: a change
	// taken is one its sender will see done.
	changes chan *change
	stop    chan struct{}
	done    sync.WaitGroup
	// asked counts the changes asked for, sent or not (for tests: which
	// are waiting).
	asked atomic.Int64
}

// change is one statement waiting to be sent, then what it did.
type change struct {
	// lock names an advisory lock the statement runs under ("": none),
	// held to the end of its transaction.
	lock string
	sql  string
	args []any
	rows int64
	err  error
	done chan struct{}
}

// lockSQL takes an advisory lock by its name, to the transaction's end.
const lockSQL = `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`

func newCombiner(db *pgxpool.Pool) *combiner {
	c := &combiner{db: db, changes: make(chan *change), stop: make(chan struct{})}
	c.done.Add(1)
	go c.run()
	return c
}

// exec runs sql as one change and says how many rows it changed. ctx
// bounds only the wait for its turn: once taken, a change runs to its end
// (under writeTimeout), as exec promises.
func (c *combiner) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	return c.execLocked(ctx, "", sql, args...)
}

// execLocked is exec under the advisory lock named lock: a statement that
// must see what another made under the same lock (it reads what was
// committed before it began, after the lock was granted).
func (c *combiner) execLocked(ctx context.Context, lock, sql string, args ...any) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ch := &change{lock: lock, sql: sql, args: args, done: make(chan struct{})}
	c.asked.Add(1)
	select {
	case c.changes <- ch:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-c.stop:
		return 0, errClosed
	}
	<-ch.done
	return ch.rows, ch.err
}

// close stops taking changes once the one under way is done.
func (c *combiner) close() {
	close(c.stop)
	c.done.Wait()
}

func (c *combiner) run() {
	defer c.done.Done()
	var batch []*change
	for {
		select {
		case ch := <-c.changes:
			batch = append(batch[:0], ch)
		case <-c.stop:
			return
		}
	more:
		for len(batch) < maxCombined {
			select {
			case ch := <-c.changes:
				batch = append(batch, ch)
			default:
				break more
			}
		}
		c.apply(batch)
		clear(batch) // let the changes' arguments go
	}
}

// apply sends the changes, alone or together, and marks each done.
func (c *combiner) apply(batch []*change) {
	defer func() {
		for _, ch := range batch {
			close(ch.done)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	if len(batch) > 1 {
		// In the order of the rows they change (their first argument: a
		// build's id, an agent's...), so that two transactions, of two
		// coordinators, lock rows in one order and never each wait for
		// the other. Those asking at once are in no order among them.
		slices.SortStableFunc(batch, func(a, b *change) int { return strings.Compare(rowKey(a), rowKey(b)) })
		err := c.together(ctx, batch)
		var refused *pgconn.PgError
		if !errors.As(err, &refused) {
			// Done, or the connection failed: each learns what the
			// transaction did, as it would have alone.
			for _, ch := range batch {
				ch.err = err
			}
			return
		}
		// The server refused one of them (a duplicate key, a deadlock...)
		// and rolled all back: each runs alone, to get its own answer.
	}
	for _, ch := range batch {
		for try := 1; ; try++ {
			ch.err = c.alone(ctx, ch)
			// A deadlock's victim is rolled back whole: it runs again.
			var pe *pgconn.PgError
			if try == deadlockTries || !errors.As(ch.err, &pe) || pe.Code != "40P01" {
				break
			}
		}
	}
}

// deadlockTries bounds how often a change that lost a deadlock runs again.
const deadlockTries = 3

// alone runs one change in a transaction of its own.
func (c *combiner) alone(ctx context.Context, ch *change) error {
	if ch.lock != "" {
		return c.together(ctx, []*change{ch})
	}
	tag, err := c.db.Exec(ctx, ch.sql, ch.args...)
	ch.rows = tag.RowsAffected()
	return err
}

// rowKey is the key of the row a change changes, as far as it tells: its
// first argument when that is text.
func rowKey(ch *change) string {
	if len(ch.args) == 0 {
		return ""
	}
	key, _ := ch.args[0].(string)
	return key
}

// together runs the changes as one transaction in one round trip. Their
// advisory locks are taken first, in the order of their names, so that
// two transactions never wait for each other's (a deadlock), nor a
// transaction waiting for a lock holds a row another's holder waits for.
func (c *combiner) together(ctx context.Context, batch []*change) error {
	var locks []string
	for _, ch := range batch {
		if ch.lock != "" {
			locks = append(locks, ch.lock)
		}
	}
	slices.Sort(locks)
	locks = slices.Compact(locks)
	return oneTrip(ctx, c.db, func(b *pgx.Batch) {
		for _, l := range locks {
			b.Queue(lockSQL, l)
		}
		for _, ch := range batch {
			b.Queue(ch.sql, ch.args...)
		}
	}, func(r pgx.BatchResults) error {
		for range locks {
			if _, err := r.Exec(); err != nil {
				return err
			}
		}
		for _, ch := range batch {
			tag, err := r.Exec()
			if err != nil {
				return err
			}
			ch.rows = tag.RowsAffected()
		}
		return nil
	})
}

// oneTrip runs the statements queue adds as one transaction in one round
// trip: BEGIN is sent before them and COMMIT after. read takes their
// results in order. When any fails, the rest are skipped, COMMIT too, and
// the transaction is rolled back here, so the connection goes back to the
// pool clean.
func oneTrip(ctx context.Context, db *pgxpool.Pool, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	batch := &pgx.Batch{}
	batch.Queue(`BEGIN`)
	queue(batch)
	batch.Queue(`COMMIT`)
	conn, err := db.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	results := conn.SendBatch(ctx, batch)
	_, err = results.Exec()
	if err == nil {
		err = read(results)
	}
	if err == nil {
		_, err = results.Exec()
	}
	if cerr := results.Close(); err == nil {
		err = cerr
	}
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		if _, rerr := conn.Exec(ctx, `ROLLBACK`); rerr != nil {
			_ = conn.Conn().Close(ctx)
		}
	}
	return err
}
