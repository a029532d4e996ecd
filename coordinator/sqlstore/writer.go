package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/monkeyci/monkeyci/coordinator"
)

// Group commit. Changes are serialised through one connection. A change
// that finds no other under way runs at once, in its caller's goroutine,
// alone, in autocommit: the cost of one statement. Changes that come while
// one runs wait in a queue; when the running one is done, the first of them
// leads: it runs every change waiting (up to maxBatch) in one transaction,
// commits once and answers each. A commit (its WAL writes, its locks, an
// fsync when Durable) costs far more than the statements in it, so under
// concurrent use a change costs several times less. (As LevelDB's writers
// do; a goroutine of its own would cost a thread wake-up on every change.)
//
// Each change is a few statements that either apply whole (one UPDATE or
// INSERT: SQLite undoes a failed statement and the transaction goes on) or
// read. A caller is answered only once its change is committed. If a batch's
// transaction fails it is rolled back and its changes are run again one by
// one, so that one change's failure stays its own.

// maxBatch bounds the changes in one transaction (and so the wait of the
// last one).
const maxBatch = 128

// errClosed is what a change meets after Close.
var errClosed = errors.New("the store is closed")

// change is one caller's change.
type change struct {
	ctx context.Context
	run func(w wconn) error
	// wake tells the waiting caller that its change is done (done is set)
	// or that it leads now.
	wake chan struct{}
	done bool
	err  error
}

// wconn is the writer connection as a change sees it: inside the batch's
// transaction, or alone in autocommit.
type wconn struct {
	ctx context.Context
	tx  *sql.Tx // nil: autocommit
}

// stmt binds a statement prepared on the writer to the transaction.
func (w wconn) stmt(s *sql.Stmt) *sql.Stmt {
	if w.tx == nil {
		return s
	}
	return w.tx.StmtContext(w.ctx, s)
}

// write runs a change and reports how it ended. A change whose ctx has
// ended when its turn comes is not run; one that has started runs to its
// end, whatever ctx does meanwhile, so that the caller never has to guess
// whether it applied.
func (s *Store) write(ctx context.Context, run func(w wconn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &change{ctx: ctx, run: run, wake: make(chan struct{}, 1)}
	s.wmu.Lock()
	if s.closed {
		s.wmu.Unlock()
		return errClosed
	}
	s.inflight.Add(1)
	defer s.inflight.Done()
	if s.direct {
		defer s.wmu.Unlock()
		s.runAlone(c)
		return c.err
	}
	s.queue = append(s.queue, c)
	lead := len(s.queue) == 1
	s.wmu.Unlock()
	if !lead {
		<-c.wake
		if c.done { // set before the wake: the channel orders it
			return c.err
		}
	}
	// c leads: it is first in the queue.
	s.wmu.Lock()
	batch := append(s.batch[:0], s.queue[:min(len(s.queue), maxBatch)]...)
	s.wmu.Unlock()
	s.runBatch(batch)
	s.wmu.Lock()
	n := copy(s.queue, s.queue[len(batch):])
	clear(s.queue[n:])
	s.queue = s.queue[:n]
	for _, b := range batch[1:] {
		b.done = true
		b.wake <- struct{}{}
	}
	if len(s.queue) > 0 {
		s.queue[0].wake <- struct{}{} // the next leader
	}
	clear(batch)
	s.batch = batch[:0]
	s.wmu.Unlock()
	return c.err
}

// runBatch runs the changes and sets their outcomes.
func (s *Store) runBatch(batch []*change) {
	live := make([]*change, 0, len(batch))
	for _, c := range batch {
		if c.err = c.ctx.Err(); c.err == nil {
			live = append(live, c)
		} // else not run: the caller gave up
	}
	switch len(live) {
	case 0:
		return
	case 1:
		s.runAlone(live[0])
		return
	}
	// The statements run under a context that does not end: interrupting
	// one would roll back the whole transaction, everyone's changes.
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		s.runEach(live)
		return
	}
	for _, c := range live {
		c.err = c.run(wconn{ctx: ctx, tx: tx})
		if c.err != nil && !ownFailure(c.err) {
			// An I/O error, a full disk...: SQLite may have rolled back
			// the transaction. Start again, one by one.
			_ = tx.Rollback()
			s.runEach(live)
			return
		}
	}
	if err := tx.Commit(); err != nil {
		s.runEach(live)
	}
}

func (s *Store) runEach(cs []*change) {
	for _, c := range cs {
		s.runAlone(c)
	}
}

func (s *Store) runAlone(c *change) {
	c.err = c.run(wconn{ctx: context.WithoutCancel(c.ctx)})
}

// ownFailure reports an error that ends one change and leaves the
// transaction around it sound: a refusal, or a constraint violation (which
// SQLite undoes by the statement).
func ownFailure(err error) bool {
	return errors.Is(err, coordinator.ErrStale) || errors.Is(err, coordinator.ErrNotFound) ||
		errors.Is(err, coordinator.ErrDuplicate) || isConstraint(err)
}
