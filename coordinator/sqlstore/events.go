package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/monkeyci/monkeyci/coordinator"
)

// AppendEvent stores an attempt's event under its sequence number, once:
// storing a seq again changes nothing and reports false.
//
// It is fenced like the other changes that name an attempt: the event is
// taken only while that attempt is the build's current one and running.
// A late report (the attempt was sent back to the queue, superseded or
// has ended) is ErrStale, an unknown build ErrNotFound.
//
// It is one statement: the fenced INSERT OR IGNORE, whose trigger advances
// the attempt's contiguous mark (see LastSeq) in the same statement. Each
// seq is walked over by the mark once, so events that arrive out of order
// cost about as much as in order. When nothing is inserted the build is
// read, before any other change, to tell a duplicate from a refusal.
func (s *Store) AppendEvent(ctx context.Context, e coordinator.StoredEvent) (bool, error) {
	op := fmt.Sprintf("append event %d of build %s attempt %d", e.Seq, e.BuildID, e.Attempt)
	if e.Seq < 1 {
		return false, fmt.Errorf("%s: sequence numbers count from 1", op)
	}
	if e.Attempt < 1 {
		return false, fmt.Errorf("%s: attempts count from 1", op)
	}
	data, err := json.Marshal(e.Event)
	if err != nil {
		return false, fmt.Errorf("%s: encode: %w", op, err)
	}
	var stored bool
	err = s.write(ctx, func(w wconn) error {
		stored = false // a batch that failed runs its changes again
		res, err := w.stmt(s.q.appendEvent).ExecContext(w.ctx, e.BuildID, e.Attempt, e.Seq, string(data))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 1 {
			stored = true
			return nil
		}
		// Not inserted: refused, or a duplicate.
		var state string
		var attempt int
		err = w.stmt(s.q.wcurrent).QueryRowContext(w.ctx, e.BuildID).Scan(&state, &attempt, new(string))
		if errors.Is(err, sql.ErrNoRows) {
			return coordinator.ErrNotFound
		}
		if err != nil {
			return err
		}
		if attempt != e.Attempt || coordinator.State(state) != coordinator.Running {
			return fmt.Errorf("%w: the build is %s at attempt %d, events are taken only from the running attempt", coordinator.ErrStale, state, attempt)
		}
		return nil // a duplicate
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	return stored, nil
}

// LastSeq is the highest seq stored for the attempt with every one before
// it stored too (0 when none). An unknown build is ErrNotFound.
func (s *Store) LastSeq(ctx context.Context, id string, attempt int) (int64, error) {
	var last sql.NullInt64
	err := s.q.lastSeq.QueryRowContext(ctx, id, attempt).Scan(&last)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("last seq of build %s attempt %d: %w", id, attempt, coordinator.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("last seq of build %s attempt %d: %w", id, attempt, err)
	}
	return last.Int64, nil
}

// Events returns a build's events, attempt by attempt, in seq order. An
// unknown build is ErrNotFound; a build without events has none.
func (s *Store) Events(ctx context.Context, id string) ([]coordinator.StoredEvent, error) {
	op := fmt.Sprintf("events of build %s", id)
	es, err := s.events(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(es) == 0 {
		var exists bool
		if err := s.q.buildExists.QueryRowContext(ctx, id).Scan(&exists); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if !exists {
			return nil, fmt.Errorf("%s: %w", op, coordinator.ErrNotFound)
		}
	}
	return es, nil
}

func (s *Store) events(ctx context.Context, id string) ([]coordinator.StoredEvent, error) {
	rs, err := s.q.events.QueryContext(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var es []coordinator.StoredEvent
	for rs.Next() {
		e := coordinator.StoredEvent{BuildID: id}
		var data []byte
		if err := rs.Scan(&e.Attempt, &e.Seq, &data); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(data, &e.Event); err != nil {
			return nil, fmt.Errorf("event %d of attempt %d: %w", e.Seq, e.Attempt, err)
		}
		es = append(es, e)
	}
	return es, rs.Err()
}
