package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
	"github.com/monkeyci/monkeyci/events"
)

// CreateBuild stores a new build. Its state defaults to queued and its
// creation time to now. An id that exists already is an error.
func (s *Store) CreateBuild(ctx context.Context, b coordinator.Build) error {
	ins, err := s.buildInsert(b, nil, "")
	if err != nil {
		return err
	}
	return ins.wrap(s.write(ctx, ins.run))
}

// CreateDeliveredBuild stores a build made by a forge's delivery, once: the
// delivery is a unique column of the build, and the look for a build of
// the same event runs in the same change as the insert, on the writer.
func (s *Store) CreateDeliveredBuild(ctx context.Context, b coordinator.Build, d coordinator.Delivery) (string, error) {
	if d.Forge == "" || d.ID == "" {
		return "", errors.New("create delivered build: a forge and a delivery id are required")
	}
	key := d.Forge + ":" + d.ID
	ins, err := s.buildInsert(b, key, d.Event)
	if err != nil {
		return "", err
	}
	var first string
	err = s.write(ctx, func(w wconn) error {
		if d.Event == "" {
			return ins.run(w)
		}
		err := w.stmt(s.q.wsameEvent).QueryRowContext(w.ctx, b.Repo, d.Event, rows.Nanos(d.Since)).Scan(&first)
		if err == nil {
			return fmt.Errorf("build %s of %s was made for the same event (%s): %w", first, b.Repo, d.Event, coordinator.ErrDuplicate)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		return ins.run(w)
	})
	if errors.Is(err, coordinator.ErrDuplicate) {
		return first, err
	}
	if err != nil && isConstraint(err) {
		if qerr := s.q.buildOfDelivery.QueryRowContext(ctx, key).Scan(&first); qerr == nil {
			return first, fmt.Errorf("delivery %s made build %s: %w", key, first, coordinator.ErrDuplicate)
		}
	}
	if err != nil {
		return "", ins.wrap(err)
	}
	return b.ID, nil
}

// insert is a checked build ready to store.
type insert struct {
	id   string
	args []any
	run  func(w wconn) error
}

func (i insert) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case isConstraint(err):
		return fmt.Errorf("create build %s: a build with that id or delivery exists already: %w", i.id, err)
	}
	return fmt.Errorf("create build %s: %w", i.id, err)
}

// buildInsert checks b and makes the change that stores it.
func (s *Store) buildInsert(b coordinator.Build, delivery any, event string) (insert, error) {
	args, err := rows.BuildArgs(b, s.now(), delivery, event)
	if err != nil {
		return insert{}, err
	}
	return insert{id: b.ID, args: args, run: func(w wconn) error {
		_, err := w.stmt(s.q.createBuild).ExecContext(w.ctx, args...)
		return err
	}}, nil
}

// GetBuild returns the build (coordinator.ErrNotFound).
func (s *Store) GetBuild(ctx context.Context, id string) (coordinator.Build, error) {
	b, err := rows.ScanBuild(s.q.getBuild.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("build %s: %w", id, coordinator.ErrNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("get build %s: %w", id, err)
	}
	return b, nil
}

// BuildIDs returns the ids that start with prefix, in order, at most limit.
func (s *Store) BuildIDs(ctx context.Context, prefix string, limit int) ([]string, error) {
	// Text compares byte by byte: every id that starts with prefix sorts
	// below prefix followed by the greatest code point.
	rs, err := s.q.buildIDs.QueryContext(ctx, prefix, prefix+"\U0010FFFF", limit)
	ids, err := collect(rs, err, func(r rows.Scanner) (id string, err error) { return id, r.Scan(&id) })
	if err != nil {
		return nil, fmt.Errorf("builds by id prefix %s: %w", prefix, err)
	}
	return ids, nil
}

// ListBuilds returns the builds that match f, newest first (by creation,
// then id).
func (s *Store) ListBuilds(ctx context.Context, f coordinator.BuildFilter) ([]coordinator.Build, error) {
	q, args := rows.BuildsMatching(f, func(int) string { return "?" })
	rs, err := s.r.QueryContext(ctx, q, args...)
	bs, err := collect(rs, err, rows.ScanBuild)
	if err != nil {
		return nil, fmt.Errorf("list builds: %w", err)
	}
	return bs, nil
}

// Queued returns the queued builds, oldest first (by creation, then id).
func (s *Store) Queued(ctx context.Context) ([]coordinator.Build, error) {
	rs, err := s.q.queued.QueryContext(ctx)
	bs, err := collect(rs, err, rows.ScanBuild)
	if err != nil {
		return nil, fmt.Errorf("queued builds: %w", err)
	}
	return bs, nil
}

// Running returns the builds under a lease, oldest first.
func (s *Store) Running(ctx context.Context) ([]coordinator.Build, error) {
	rs, err := s.q.running.QueryContext(ctx)
	bs, err := collect(rs, err, rows.ScanBuild)
	if err != nil {
		return nil, fmt.Errorf("running builds: %w", err)
	}
	return bs, nil
}

// collect scans every row a query returned with scan.
func collect[T any](rs *sql.Rows, err error, scan func(rows.Scanner) (T, error)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []T
	for rs.Next() {
		v, err := scan(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rs.Err()
}

// SetWaiting records why a queued build was not dispatched. A build that is
// no longer queued is ErrStale.
func (s *Store) SetWaiting(ctx context.Context, id, why string) error {
	return s.fenced(ctx, fmt.Sprintf("set why build %s waits", id), id,
		rows.Want{State: coordinator.Queued, AnyAttempt: true, Waiting: &why},
		s.q.setWaiting, id, why)
}

// Assign moves a queued build to running as attempt (its attempt+1), on
// agent, with a lease. Started becomes now; Waiting is cleared.
func (s *Store) Assign(ctx context.Context, id string, attempt int, agent string, lease time.Time) error {
	op := fmt.Sprintf("assign build %s attempt %d", id, attempt)
	if attempt < 1 {
		return fmt.Errorf("%s: attempts count from 1", op)
	}
	return s.fenced(ctx, op, id, rows.Want{State: coordinator.Queued, Attempt: attempt - 1},
		s.q.assign, id, attempt-1, attempt, agent, rows.Nanos(lease), rows.Nanos(s.now()))
}

// Renew extends the lease of a running attempt.
func (s *Store) Renew(ctx context.Context, id string, attempt int, lease time.Time) error {
	return s.fenced(ctx, fmt.Sprintf("renew the lease of build %s attempt %d", id, attempt), id,
		rows.Want{State: coordinator.Running, Attempt: attempt},
		s.q.renew, id, attempt, rows.Nanos(lease))
}

// Requeue puts a running attempt back in the queue. The build keeps its
// attempt number (the next Assign is attempt+1) and its place in the queue
// (its creation time); agent, lease and start are cleared. reason is kept
// as why attempt+1 exists.
func (s *Store) Requeue(ctx context.Context, id string, attempt int, reason string) error {
	return s.fenced(ctx, fmt.Sprintf("requeue build %s attempt %d", id, attempt), id,
		rows.Want{State: coordinator.Running, Attempt: attempt},
		s.q.requeue, id, attempt, reason)
}

// Handback is Requeue for a build that needs another kind of agent: its
// labels become labels.
func (s *Store) Handback(ctx context.Context, id string, attempt int, reason string, labels map[string]string) error {
	op := fmt.Sprintf("hand back build %s attempt %d", id, attempt)
	text, err := rows.MapJSON(labels)
	if err != nil {
		return fmt.Errorf("%s: labels: %w", op, err)
	}
	return s.fenced(ctx, op, id, rows.Want{State: coordinator.Running, Attempt: attempt}, s.q.handback, id, attempt, reason, text)
}

// Finish ends a running attempt with a result. attempt 0 ends a queued
// build whatever its attempt count (never dispatched, or sent back to the
// queue). The agent stays recorded; the lease and Waiting are cleared.
func (s *Store) Finish(ctx context.Context, id string, attempt int, result events.Result, message string) error {
	op := fmt.Sprintf("finish build %s attempt %d", id, attempt)
	if attempt == 0 {
		return s.fenced(ctx, op, id, rows.Want{State: coordinator.Queued, AnyAttempt: true},
			s.q.finishQueued, id, string(result), message, rows.Nanos(s.now()))
	}
	return s.fenced(ctx, op, id, rows.Want{State: coordinator.Running, Attempt: attempt},
		s.q.finish, id, attempt, string(result), message, rows.Nanos(s.now()))
}

// Retry queues an ended build again: the next Assign is its attempt+1,
// and reason is kept as why it exists. Result, message, agent and the
// times but its creation are cleared; it keeps its creation time, and so
// its place in Queued.
func (s *Store) Retry(ctx context.Context, id, reason string) error {
	return s.fenced(ctx, fmt.Sprintf("retry build %s", id), id,
		rows.Want{State: coordinator.Ended, AnyAttempt: true},
		s.q.retry, id, reason)
}

// fenced runs update, a single UPDATE whose WHERE names the build, the
// state and the attempt w (the fence), with args. It applies whole or not
// at all. When it changes no row the build is read, before any other
// change, to say why: missing is ErrNotFound; in another state or attempt
// ErrStale, saying what was expected and what was found.
func (s *Store) fenced(ctx context.Context, op, id string, w rows.Want, update *sql.Stmt, args ...any) error {
	err := s.write(ctx, func(c wconn) error {
		res, err := c.stmt(update).ExecContext(c.ctx, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 1 {
			return nil
		}
		var cur rows.Current
		err = c.stmt(s.q.wcurrent).QueryRowContext(c.ctx, id).Scan(&cur.State, &cur.Attempt, &cur.Waiting)
		if errors.Is(err, sql.ErrNoRows) {
			return coordinator.ErrNotFound
		}
		if err != nil {
			return err
		}
		return w.Refusal(cur)
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// isConstraint reports a constraint violation (a duplicate key...).
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}
