package pgstore

import (
	"context"
	"errors"
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
	sql  string
	args []any
	rows int64
	err  error
	done chan struct{}
}

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
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	ch := &change{sql: sql, args: args, done: make(chan struct{})}
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
		err := oneTrip(ctx, c.db, func(b *pgx.Batch) {
			for _, ch := range batch {
				b.Queue(ch.sql, ch.args...)
			}
		}, func(r pgx.BatchResults) error {
			for _, ch := range batch {
				tag, err := r.Exec()
				if err != nil {
					return err
				}
				ch.rows = tag.RowsAffected()
			}
			return nil
		})
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
		tag, err := c.db.Exec(ctx, ch.sql, ch.args...)
		ch.rows, ch.err = tag.RowsAffected(), err
	}
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
