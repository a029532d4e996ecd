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
// In the same transaction it advances the attempt's contiguous high-water
// mark (see LastSeq). Each seq is walked over at most once, so events that
// arrive out of order cost no more than in order.
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		// The fence and the insert in one statement: no row is selected
		// unless the attempt is current and running; OR IGNORE skips a
		// seq that is stored already.
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO events (build_id, attempt, seq, event)
			SELECT id, attempt, ?, ? FROM builds WHERE id = ? AND attempt = ? AND state = 'running'`,
			e.Seq, string(data), e.BuildID, e.Attempt)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return explainEvent(ctx, tx, e)
		}
		stored = true
		return advanceMark(ctx, tx, e.BuildID, e.Attempt, e.Seq)
	})
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	return stored, nil
}

// explainEvent says why an event was not inserted: the build is missing
// (ErrNotFound), the attempt is not current and running (ErrStale), or the
// seq is stored already (nil).
func explainEvent(ctx context.Context, tx *sql.Tx, e coordinator.StoredEvent) error {
	var state string
	var attempt int
	err := tx.QueryRowContext(ctx, `SELECT state, attempt FROM builds WHERE id = ?`, e.BuildID).Scan(&state, &attempt)
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
}

// advanceMark moves the attempt's contiguous mark past seq, just stored,
// and past the run of seqs stored after it, when seq extends the mark.
func advanceMark(ctx context.Context, tx *sql.Tx, build string, attempt int, seq int64) error {
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT last_seq FROM event_marks WHERE build_id = ? AND attempt = ?`, build, attempt).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if seq != last+1 {
		return nil // a gap stays before seq: the mark does not move
	}
	// The end of the run of stored seqs that starts at seq: the first
	// stored seq from seq on whose successor is not stored. It exists (seq
	// is stored), and the scan stops there.
	var end int64
	err = tx.QueryRowContext(ctx, `SELECT seq FROM events AS e WHERE build_id = ?1 AND attempt = ?2 AND seq >= ?3
		AND NOT EXISTS (SELECT 1 FROM events WHERE build_id = ?1 AND attempt = ?2 AND seq = e.seq + 1)
		ORDER BY seq LIMIT 1`, build, attempt, seq).Scan(&end)
	if err != nil {
		return fmt.Errorf("find the end of the run: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO event_marks (build_id, attempt, last_seq) VALUES (?, ?, ?)
		ON CONFLICT (build_id, attempt) DO UPDATE SET last_seq = excluded.last_seq`, build, attempt, end)
	return err
}

// LastSeq is the highest seq stored for the attempt with every one before
// it stored too (0 when none). An unknown build is ErrNotFound.
func (s *Store) LastSeq(ctx context.Context, id string, attempt int) (int64, error) {
	var last sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT m.last_seq FROM builds AS b
		LEFT JOIN event_marks AS m ON m.build_id = b.id AND m.attempt = ?
		WHERE b.id = ?`, attempt, id).Scan(&last)
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
	// One read transaction: the build and its events are of one moment.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer func() { _ = tx.Rollback() }()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM builds WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%s: %w", op, coordinator.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT attempt, seq, event FROM events WHERE build_id = ? ORDER BY attempt, seq`, id)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer rows.Close()
	var es []coordinator.StoredEvent
	for rows.Next() {
		e := coordinator.StoredEvent{BuildID: id}
		var data string
		if err := rows.Scan(&e.Attempt, &e.Seq, &data); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if err := json.Unmarshal([]byte(data), &e.Event); err != nil {
			return nil, fmt.Errorf("%s: event %d of attempt %d: %w", op, e.Seq, e.Attempt, err)
		}
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return es, nil
}
