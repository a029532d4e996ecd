package memstore

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/monkeyci/monkeyci/coordinator"
)

// AppendEvent stores an attempt's event under its sequence number, once,
// while that attempt is the build's running one (else ErrStale).
func (s *Store) AppendEvent(ctx context.Context, e coordinator.StoredEvent) (bool, error) {
	op := fmt.Sprintf("append event %d of build %s attempt %d", e.Seq, e.BuildID, e.Attempt)
	if e.Seq < 1 {
		return false, fmt.Errorf("%s: sequence numbers count from 1", op)
	}
	if e.Attempt < 1 {
		return false, fmt.Errorf("%s: attempts count from 1", op)
	}
	// Kept as the SQL store keeps it: encoded, so what comes back is what
	// a round trip through JSON gives.
	data, err := json.Marshal(e.Event)
	if err != nil {
		return false, fmt.Errorf("%s: encode: %w", op, err)
	}
	if err := s.lock(ctx); err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	defer s.mu.Unlock()
	sb, ok := s.builds[e.BuildID]
	switch {
	case !ok:
		return false, fmt.Errorf("%s: %w", op, coordinator.ErrNotFound)
	case sb.b.Attempt != e.Attempt || sb.b.State != coordinator.Running:
		return false, fmt.Errorf("%s: %w: the build is %s at attempt %d, events are taken only from the running attempt",
			op, coordinator.ErrStale, sb.b.State, sb.b.Attempt)
	}
	seqs := sb.events[e.Attempt]
	if seqs == nil {
		seqs = map[int64][]byte{}
		sb.events[e.Attempt] = seqs
	}
	if _, dup := seqs[e.Seq]; dup {
		return false, nil
	}
	seqs[e.Seq] = data
	for mark := sb.marks[e.Attempt]; seqs[mark+1] != nil; mark++ {
		sb.marks[e.Attempt] = mark + 1
	}
	return true, nil
}

// LastSeq is the highest seq stored for the attempt with every one before
// it stored too (0 when none).
func (s *Store) LastSeq(ctx context.Context, id string, attempt int) (int64, error) {
	op := fmt.Sprintf("last seq of build %s attempt %d", id, attempt)
	if err := s.lock(ctx); err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	defer s.mu.Unlock()
	sb, ok := s.builds[id]
	if !ok {
		return 0, fmt.Errorf("%s: %w", op, coordinator.ErrNotFound)
	}
	return sb.marks[attempt], nil
}

// Events returns a build's events, attempt by attempt, in seq order.
func (s *Store) Events(ctx context.Context, id string) ([]coordinator.StoredEvent, error) {
	op := fmt.Sprintf("events of build %s", id)
	if err := s.lock(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	sb, ok := s.builds[id]
	if !ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("%s: %w", op, coordinator.ErrNotFound)
	}
	type stored struct {
		attempt int
		seq     int64
		data    []byte
	}
	var all []stored
	for attempt, seqs := range sb.events {
		for seq, data := range seqs {
			all = append(all, stored{attempt, seq, data})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(all, func(a, b stored) int {
		if a.attempt != b.attempt {
			return a.attempt - b.attempt
		}
		return int(a.seq - b.seq)
	})
	var out []coordinator.StoredEvent
	for _, st := range all {
		e := coordinator.StoredEvent{BuildID: id, Attempt: st.attempt, Seq: st.seq}
		if err := json.Unmarshal(st.data, &e.Event); err != nil {
			return nil, fmt.Errorf("%s: event %d of attempt %d: %w", op, st.seq, st.attempt, err)
		}
		out = append(out, e)
	}
	return out, nil
}
