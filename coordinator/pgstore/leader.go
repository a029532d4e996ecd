package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
	"github.com/monkeyci/monkeyci/coordinator/leader"
)

var _ leader.Lease = (*Store)(nil)

// Claim renews the leader's role for me, or takes it once it has expired
// (the term then grows), and records me as a member seen now; it returns
// who holds the role after it.
func (s *Store) Claim(ctx context.Context, me leader.Member, ttl time.Duration) (leader.Holder, error) {
	var h leader.Holder
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO coordinators (id, grpc_addr, http_addr, version, started, seen)
			VALUES ($1, $2, $3, $4, $5, clock_timestamp())
			ON CONFLICT (id) DO UPDATE SET grpc_addr = excluded.grpc_addr, http_addr = excluded.http_addr,
				version = excluded.version, seen = excluded.seen`,
			me.ID, me.GRPC, me.HTTP, me.Version, rows.Nanos(me.Started)); err != nil {
			return err
		}
		// To take the role from another, its row is locked FOR UPDATE
		// first: that waits for the changes fenced under the old term
		// (each holds the row FOR KEY SHARE, see leaderClause), and the
		// later ones wait for the new term and see it. A holder renewing
		// its own lease changes no term and waits for none of them: a
		// renewal that queued behind a busy leader's changes (and they
		// behind it) stalled them all, and lost the role under load.
		var takeover bool
		err := tx.QueryRow(ctx, `SELECT true FROM leader WHERE id = 1 AND holder <> $1 AND expires < clock_timestamp() FOR UPDATE`,
			me.ID).Scan(&takeover)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO leader (id, holder, term, expires)
			VALUES (1, $1, 1, clock_timestamp() + $2 * interval '1 microsecond')
			ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires = excluded.expires,
				term = CASE WHEN leader.holder = excluded.holder THEN leader.term ELSE leader.term + 1 END
			WHERE leader.holder = excluded.holder OR $3`,
			me.ID, ttl.Microseconds(), takeover); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT l.holder, l.term, coalesce(c.grpc_addr, ''), coalesce(c.http_addr, '')
			FROM leader AS l LEFT JOIN coordinators AS c ON c.id = l.holder WHERE l.id = 1`).
			Scan(&h.ID, &h.Term, &h.GRPC, &h.HTTP)
	})
	if err != nil {
		return h, fmt.Errorf("claim the leader's role: %w", err)
	}
	return h, nil
}

// Fence makes this store's leader-only changes apply only while id holds
// the role at t (0: none applies).
func (s *Store) Fence(id string, t int64) {
	if t == 0 {
		s.leading.Store(nil)
		return
	}
	s.leading.Store(&term{holder: id, term: t})
}

// Resign gives the role up at once (a standby need not wait for it to
// expire), if id holds it at term.
func (s *Store) Resign(ctx context.Context, id string, t int64) error {
	s.leading.Store(nil)
	_, err := s.db.Exec(ctx, `UPDATE leader SET expires = '-infinity' WHERE id = 1 AND holder = $1 AND term = $2`, id, t)
	if err != nil {
		return fmt.Errorf("resign the leader's role: %w", err)
	}
	return nil
}

// Members lists the coordinators seen within since, oldest first, those
// not seen within alive (by the database's clock) marked gone.
func (s *Store) Members(ctx context.Context, since, alive time.Duration) ([]leader.Member, error) {
	rs, err := s.db.Query(ctx, `SELECT c.id, c.grpc_addr, c.http_addr, c.version, c.started, c.seen,
			coalesce(l.holder = c.id AND l.expires > clock_timestamp(), false), coalesce(l.term, 0),
			c.seen <= clock_timestamp() - $2 * interval '1 microsecond'
		FROM coordinators AS c LEFT JOIN leader AS l ON l.id = 1 AND l.holder = c.id
		WHERE c.seen > clock_timestamp() - $1 * interval '1 microsecond' ORDER BY c.started, c.id`, since.Microseconds(), alive.Microseconds())
	ms, err := collect(rs, err, func(r rows.Scanner) (leader.Member, error) {
		var m leader.Member
		var started int64
		err := r.Scan(&m.ID, &m.GRPC, &m.HTTP, &m.Version, &started, &m.Seen, &m.Leader, &m.Term, &m.Gone)
		m.Started, m.Seen = rows.Time(started), m.Seen.UTC()
		if !m.Leader {
			m.Term = 0
		}
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("list coordinators: %w", err)
	}
	return ms, nil
}

// Elected makes the store fence the changes only a leader makes (dispatch,
// leases, agents' reports): from then on they apply only while this
// store's last Claim holds the role. A store that is never elected (one
// coordinator alone, or a tool) is not fenced.
func (s *Store) Elected() { s.elected.Store(true) }

// term is the role this store's coordinator holds.
type term struct {
	holder string
	term   int64
}

// leaderClause is the clause a leader's change adds to its WHERE, with the
// numbers of its two parameters: the change applies only while the
// database says this coordinator holds the role at the term it claimed.
func leaderClause(holderParam, termParam int) string {
	// FOR KEY SHARE: a claim that changes the term (it locks the row FOR
	// UPDATE, see Claim) waits for this change, or this change, waiting
	// for the claim, reads the term it committed. A plain read would use
	// the statement's snapshot, older than a claim committed while the
	// statement waited for a build's lock. The weakest lock that does
	// this: the holder's renewals (an update of no key) wait for none.
	return fmt.Sprintf(` AND EXISTS (SELECT 1 FROM leader WHERE id = 1 AND holder = $%d AND term = $%d FOR KEY SHARE)`, holderParam, termParam)
}

// clause is leaderClause for a change whose arguments are args, numbered
// after them, and args with the role's holder and term added. A change
// that is not fenced (nil) gets neither.
func (f *term) clause(args []any) (string, []any) {
	if f == nil {
		return "", args
	}
	return leaderClause(len(args)+1, len(args)+2), append(args, f.holder, f.term)
}

// fence is the arguments of leaderClause for a change now: the role this
// store last claimed. A store that never claims (one coordinator alone,
// or tools) is not fenced: nil.
func (s *Store) fence() *term {
	if !s.elected.Load() {
		return nil
	}
	if t := s.leading.Load(); t != nil {
		return t
	}
	return &term{} // holds no role: the change is refused
}

// notLeader says why a fenced change that applied to no row did not:
// ErrNotLeader when the role is not (or no longer) this coordinator's.
func (s *Store) notLeader(ctx context.Context, f *term) error {
	if f == nil {
		return nil
	}
	var holds bool
	err := s.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM leader WHERE id = 1 AND holder = $1 AND term = $2)`, f.holder, f.term).Scan(&holds)
	if err != nil {
		return err
	}
	if !holds {
		s.leading.CompareAndSwap(f, nil)
		return fmt.Errorf("%w (term %d is over)", coordinator.ErrNotLeader, f.term)
	}
	return nil
}
