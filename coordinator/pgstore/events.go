package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
)

// AppendEvent stores an attempt's event under its sequence number, once:
// storing a seq again changes nothing and reports false.
//
// It is fenced like the other changes that name an attempt: the event is
// taken only while that attempt is the build's current one and running.
// A late report (the attempt was sent back to the queue, superseded or
// has ended) is ErrStale, an unknown build ErrNotFound.
//
// It is one statement: it locks the build's row while the attempt is
// current and running (so a change of the build waits for it, and it for
// the change), inserts the event unless its seq is stored, and the trigger
// events_advance_mark moves the attempt's contiguous mark (see LastSeq).
// When nothing is inserted the build is read to tell a duplicate from a
// refusal.
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
	stored, err := func() (bool, error) {
		f := s.fence()
		fence, args := f.clause([]any{e.BuildID, e.Attempt, e.Seq, string(data)})
		n, err := s.exec(ctx, `WITH b AS (
				SELECT id, attempt FROM builds WHERE id = $1 AND attempt = $2 AND state = 'running'`+fence+`
				FOR NO KEY UPDATE)
			INSERT INTO events (build_id, attempt, seq, event) SELECT id, attempt, $3::bigint, $4::text FROM b
			ON CONFLICT DO NOTHING`, args...)
		if err != nil || n == 1 {
			return n == 1, err
		}
		if err := s.notLeader(ctx, f); err != nil {
			return false, err
		}
		cur, err := s.current(ctx, e.BuildID)
		if err != nil {
			return false, err
		}
		if cur.Attempt != e.Attempt || cur.State != coordinator.Running {
			return false, fmt.Errorf("%w: the build is %s at attempt %d, events are taken only from the running attempt", coordinator.ErrStale, cur.State, cur.Attempt)
		}
		return false, nil // a duplicate
	}()
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	return stored, nil
}

// LastSeq is the highest seq stored for the attempt with every one before
// it stored too (0 when none). An unknown build is ErrNotFound.
func (s *Store) LastSeq(ctx context.Context, id string, attempt int) (int64, error) {
	var last *int64
	err := s.db.QueryRow(ctx, `SELECT m.last_seq FROM builds AS b
		LEFT JOIN event_marks AS m ON m.build_id = b.id AND m.attempt = $2 WHERE b.id = $1`, id, attempt).Scan(&last)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("last seq of build %s attempt %d: %w", id, attempt, coordinator.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("last seq of build %s attempt %d: %w", id, attempt, err)
	}
	if last == nil {
		return 0, nil
	}
	return *last, nil
}

// Events returns a build's events, attempt by attempt, in seq order. An
// unknown build is ErrNotFound; a build without events has none.
func (s *Store) Events(ctx context.Context, id string) ([]coordinator.StoredEvent, error) {
	op := fmt.Sprintf("events of build %s", id)
	rs, err := s.db.Query(ctx, `SELECT attempt, seq, event FROM events WHERE build_id = $1 ORDER BY attempt, seq`, id)
	es, err := collect(rs, err, func(r rows.Scanner) (coordinator.StoredEvent, error) {
		e := coordinator.StoredEvent{BuildID: id}
		var data []byte
		if err := r.Scan(&e.Attempt, &e.Seq, &data); err != nil {
			return e, err
		}
		if err := json.Unmarshal(data, &e.Event); err != nil {
			return e, fmt.Errorf("event %d of attempt %d: %w", e.Seq, e.Attempt, err)
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(es) == 0 {
		var exists bool
		if err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM builds WHERE id = $1)`, id).Scan(&exists); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if !exists {
			return nil, fmt.Errorf("%s: %w", op, coordinator.ErrNotFound)
		}
	}
	return es, nil
}
