package pgstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
	"github.com/monkeyci/monkeyci/events"
)

const insertBuild = `INSERT INTO builds (` + rows.BuildColumns + `, event_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,
	$10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)`

// buildTypes are the types of rows.BuildColumns and event_key, in order:
// an INSERT ... SELECT (insertBuildWhere) gives its values as typed
// parameters, where VALUES takes their types from the columns.
var buildTypes = []string{"text", "text", "text", "text", "text", "text", "text",
	"text", "text", "text", "integer", "text", "bigint", "text", "bigint", "bigint", "bigint",
	"text", "text", "text", "text", "text", "integer", "text", "text", "boolean", "integer", "text"}

// insertBuildWhere is insertBuild made only when cond holds, in the same
// statement (one round trip): cond's parameters are numbered from
// len(buildTypes)+1.
func insertBuildWhere(cond string) string {
	values := make([]string, len(buildTypes))
	for i, t := range buildTypes {
		values[i] = fmt.Sprintf("$%d::%s", i+1, t)
	}
	return `INSERT INTO builds (` + rows.BuildColumns + `, event_key) SELECT ` + strings.Join(values, ", ") + ` WHERE ` + cond
}

// CreateBuild stores a new build. Its state defaults to queued and its
// creation time to now. An id that exists already is an error.
//
// A build created running (sent at once to an agent) is a leader's
// change: fenced like Assign (coordinator.ErrNotLeader).
func (s *Store) CreateBuild(ctx context.Context, b coordinator.Build) error {
	args, err := s.buildArgs(b, nil, "")
	if err != nil {
		return err
	}
	f := s.fence()
	if b.State != coordinator.Running || f == nil {
		_, err = s.exec(ctx, insertBuild, args...)
		return createError(b.ID, err)
	}
	fence, args := f.clause(args)
	n, err := s.exec(ctx, insertBuildWhere(`true`+fence), args...)
	if err == nil && n == 0 {
		err = fmt.Errorf("create build %s running: %w", b.ID, coordinator.ErrNotLeader)
	}
	return createError(b.ID, err)
}

func createError(id string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, coordinator.ErrNotLeader):
		return err
	case isConstraint(err):
		return fmt.Errorf("create build %s: a build with that id or delivery exists already: %w", id, err)
	case isBadText(err):
		return fmt.Errorf("create build %s: a name or URL of it holds a NUL byte, which no repository, branch or commit does", id)
	}
	return fmt.Errorf("create build %s: %w", id, err)
}

// CreateDeliveredBuild stores a build made by a forge's delivery, once: the
// delivery is a unique column of the build, and a build of the same event
// is looked for and the new one inserted under an advisory lock on the
// repository's event, so that two coordinators given the event at once
// take turns.
//
// The lock and the insert go with the changes combined with them (see
// combiner): one round trip, one commit.
func (s *Store) CreateDeliveredBuild(ctx context.Context, b coordinator.Build, d coordinator.Delivery) (string, error) {
	if d.Forge == "" || d.ID == "" {
		return "", errors.New("create delivered build: a forge and a delivery id are required")
	}
	key := d.Forge + ":" + d.ID
	args, err := s.buildArgs(b, key, d.Event)
	if err != nil {
		return "", err
	}
	wctx, cancel, err := writing(ctx)
	if err != nil {
		return "", err
	}
	defer cancel()
	// A build sent at once to an agent is a leader's change (CreateBuild).
	var fence string
	if b.State == coordinator.Running {
		fence, args = s.fence().clause(args)
	}
	var first string
	inserted := false
	if d.Event == "" {
		var n int64
		n, err = s.exec(wctx, insertBuildWhere(`true`+fence), args...)
		inserted = n == 1
	} else {
		first, inserted, err = s.createOncePerEvent(wctx, b, d, args, fence)
	}
	switch {
	case err == nil && !inserted && first != "":
		return first, fmt.Errorf("build %s of %s was made for the same event (%s): %w", first, b.Repo, d.Event, coordinator.ErrDuplicate)
	case err == nil && !inserted:
		return "", fmt.Errorf("create build %s running: %w", b.ID, coordinator.ErrNotLeader)
	}
	if err != nil && isConstraint(err) {
		if qerr := s.db.QueryRow(wctx, `SELECT id FROM builds WHERE delivery = $1`, key).Scan(&first); qerr == nil {
			return first, fmt.Errorf("delivery %s made build %s: %w", key, first, coordinator.ErrDuplicate)
		}
	}
	if err != nil {
		return "", createError(b.ID, err)
	}
	return b.ID, nil
}

// createOncePerEvent inserts the build unless one of the same event was
// made since d.Since, and returns the first build of the event: b's own
// when it was inserted.
//
// The insert runs under an advisory lock of the repository's event, with
// the changes combined with it (see combiner): it reads what was committed
// when it began, after the lock was granted. Only when it inserts nothing
// is the event's first build read. The read orders by creation alone, the
// order the event's index gives: ordered by creation and id, PostgreSQL's
// generic plan walked the index of creation through every build since
// d.Since, and a standby answered some 600 deliveries a second, not 1,000.
func (s *Store) createOncePerEvent(ctx context.Context, b coordinator.Build, d coordinator.Delivery, args []any, fence string) (first string, inserted bool, err error) {
	const prior = `SELECT id FROM builds WHERE repo = $%d AND event_key = $%d AND event_key <> '' AND created >= $%d`
	since := rows.Nanos(d.Since)
	n := len(args)
	lock := fmt.Sprintf("%d:%s:%s", len(b.Repo), b.Repo, d.Event)
	made, err := s.writes.execLocked(ctx, lock, insertBuildWhere(`NOT EXISTS (`+fmt.Sprintf(prior, n+1, n+2, n+3)+`)`+fence),
		append(args, b.Repo, d.Event, since)...)
	if err != nil || made == 1 {
		return b.ID, made == 1, err
	}
	err = s.db.QueryRow(ctx, fmt.Sprintf(prior, 1, 2, 3)+` ORDER BY created LIMIT 1`, b.Repo, d.Event, since).Scan(&first)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil // none: the insert was fenced off
	}
	return first, false, err
}

// buildArgs is rows.BuildArgs of b with its free text as PostgreSQL keeps
// it (text).
func (s *Store) buildArgs(b coordinator.Build, delivery any, event string) ([]any, error) {
	b.Message, b.Waiting, b.Trigger = text(b.Message), text(b.Waiting), text(b.Trigger)
	return rows.BuildArgs(b, s.now(), delivery, event)
}

// text is a build's free text as PostgreSQL keeps it: it refuses a NUL
// byte in text, which SQLite keeps. A message comes from an agent, and
// may quote a build's own output: a NUL there is shown as U+FFFD rather
// than failing the build's end.
func text(s string) string { return strings.ReplaceAll(s, "\x00", "\uFFFD") }

// GetBuild returns the build (coordinator.ErrNotFound).
func (s *Store) GetBuild(ctx context.Context, id string) (coordinator.Build, error) {
	b, err := rows.ScanBuild(s.db.QueryRow(ctx, `SELECT `+rows.BuildColumns+` FROM builds WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return b, fmt.Errorf("build %s: %w", id, coordinator.ErrNotFound)
	}
	if err != nil {
		return b, fmt.Errorf("get build %s: %w", id, err)
	}
	return b, nil
}

// BuildIDs returns the ids that start with prefix, in order, at most limit.
func (s *Store) BuildIDs(ctx context.Context, prefix string, limit int) ([]string, error) {
	// Ids compare byte by byte: every id that starts with prefix sorts
	// below prefix followed by the greatest code point.
	var lim any // NULL: no limit
	if limit >= 0 {
		lim = limit
	}
	rs, err := s.db.Query(ctx, `SELECT id FROM builds WHERE id >= $1 AND id < $2 ORDER BY id LIMIT $3`,
		prefix, prefix+"\U0010FFFF", lim)
	ids, err := collect(rs, err, func(r rows.Scanner) (id string, err error) { return id, r.Scan(&id) })
	if err != nil {
		return nil, fmt.Errorf("builds by id prefix %s: %w", prefix, err)
	}
	return ids, nil
}

// ListBuilds returns the builds that match f, newest first (by creation,
// then id).
func (s *Store) ListBuilds(ctx context.Context, f coordinator.BuildFilter) ([]coordinator.Build, error) {
	q, args := rows.BuildsMatching(f, func(n int) string { return fmt.Sprintf("$%d", n) })
	rs, err := s.db.Query(ctx, q, args...)
	bs, err := collect(rs, err, rows.ScanBuild)
	if err != nil {
		return nil, fmt.Errorf("list builds: %w", err)
	}
	return bs, nil
}

// Queued returns the queued builds, oldest first (by creation, then id).
func (s *Store) Queued(ctx context.Context) ([]coordinator.Build, error) {
	return s.inState(ctx, coordinator.Queued)
}

// Running returns the builds under a lease, oldest first.
func (s *Store) Running(ctx context.Context) ([]coordinator.Build, error) {
	return s.inState(ctx, coordinator.Running)
}

func (s *Store) inState(ctx context.Context, st coordinator.State) ([]coordinator.Build, error) {
	rs, err := s.db.Query(ctx, `SELECT `+rows.BuildColumns+` FROM builds WHERE state = $1 ORDER BY created, id`, string(st))
	bs, err := collect(rs, err, rows.ScanBuild)
	if err != nil {
		return nil, fmt.Errorf("%s builds: %w", st, err)
	}
	return bs, nil
}

// SetWaiting records why a queued build was not dispatched. A build that is
// no longer queued is ErrStale. Unchanged, Waiting is not written again
// (the dispatcher says it often).
func (s *Store) SetWaiting(ctx context.Context, id, why string) error {
	return s.leaderFenced(ctx, fmt.Sprintf("set why build %s waits", id), id,
		rows.Want{State: coordinator.Queued, AnyAttempt: true, Waiting: &why},
		`UPDATE builds SET waiting = $2 WHERE id = $1 AND state = 'queued' AND waiting <> $2`, id, why)
}

// SetWaitingMany records one reason to wait for many queued builds, in one
// statement: the builds no longer queued, or waiting for that already,
// are left alone. It is a leader's change.
func (s *Store) SetWaitingMany(ctx context.Context, ids []string, why string) error {
	fence, args := s.fence().clause([]any{ids, why})
	q := `UPDATE builds SET waiting = $2 WHERE id = ANY($1) AND state = 'queued' AND waiting <> $2` + fence
	if _, err := s.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("set why %d builds wait: %w", len(ids), err)
	}
	return nil
}

// Assign moves a queued build to running as attempt (its attempt+1), on
// agent, with a lease. Started becomes now; Waiting is cleared.
func (s *Store) Assign(ctx context.Context, id string, attempt int, agent string, lease time.Time) error {
	op := fmt.Sprintf("assign build %s attempt %d", id, attempt)
	if attempt < 1 {
		return fmt.Errorf("%s: attempts count from 1", op)
	}
	return s.leaderFenced(ctx, op, id, rows.Want{State: coordinator.Queued, Attempt: attempt - 1},
		`UPDATE builds SET state = 'running', attempt = $3, agent = $4, lease_expires = $5, started = $6, waiting = ''
		WHERE id = $1 AND attempt = $2 AND state = 'queued'`,
		id, attempt-1, attempt, agent, rows.Nanos(lease), rows.Nanos(s.now()))
}

// Renew extends the lease of a running attempt.
func (s *Store) Renew(ctx context.Context, id string, attempt int, lease time.Time) error {
	return s.leaderFenced(ctx, fmt.Sprintf("renew the lease of build %s attempt %d", id, attempt), id,
		rows.Want{State: coordinator.Running, Attempt: attempt},
		`UPDATE builds SET lease_expires = $3 WHERE id = $1 AND attempt = $2 AND state = 'running'`,
		id, attempt, rows.Nanos(lease))
}

// withReason is attempt_reasons with the reason for attempt+1 set ($3).
const withReason = `attempt_reasons = (coalesce(attempt_reasons, '{}')::jsonb ||
	jsonb_build_object((attempt + 1)::text, $3::text))::text`

// requeued gives a build that enters the queue again its place in the
// order of entries (QueuedSince).
const requeued = `queued_seq = nextval('builds_queued_seq')`

// QueuedSince returns the queued builds whose entry to the queue (an
// order of entries, not of creation) is after mark or among missing, in
// that order, each with its entry's number. An entry is numbered as its
// change runs and shows when it commits: one can show after a later one
// (coordinator.queueEntries looks for the gaps).
func (s *Store) QueuedSince(ctx context.Context, mark int64, missing []int64) ([]coordinator.Build, []int64, error) {
	if missing == nil {
		missing = []int64{}
	}
	var numbers []int64
	rs, err := s.db.Query(ctx, `SELECT `+rows.BuildColumns+`, queued_seq FROM builds
		WHERE state = 'queued' AND (queued_seq > $1 OR queued_seq = ANY($2))
		ORDER BY queued_seq`, mark, missing)
	bs, err := collect(rs, err, func(r rows.Scanner) (coordinator.Build, error) {
		var n int64
		b, err := rows.ScanBuild(rowAnd{r, &n})
		numbers = append(numbers, n)
		return b, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("queued builds: %w", err)
	}
	return bs, numbers, nil
}

// rowAnd scans a row into what rows.ScanBuild asks, and one more column.
type rowAnd struct {
	pgx.Row
	more any
}

func (r rowAnd) Scan(dest ...any) error { return r.Row.Scan(append(dest, r.more)...) }

// Requeue puts a running attempt back in the queue. The build keeps its
// attempt number (the next Assign is attempt+1) and its place in the queue
// (its creation time); agent, lease and start are cleared. reason is kept
// as why attempt+1 exists.
func (s *Store) Requeue(ctx context.Context, id string, attempt int, reason string) error {
	return s.leaderFenced(ctx, fmt.Sprintf("requeue build %s attempt %d", id, attempt), id,
		rows.Want{State: coordinator.Running, Attempt: attempt},
		`UPDATE builds SET state = 'queued', agent = '', lease_expires = 0, started = 0, waiting = '', `+withReason+`,
		`+requeued+` WHERE id = $1 AND attempt = $2 AND state = 'running'`, id, attempt, reason)
}

// Handback is Requeue for a build that needs another kind of agent: its
// labels become labels.
func (s *Store) Handback(ctx context.Context, id string, attempt int, reason string, labels map[string]string) error {
	op := fmt.Sprintf("hand back build %s attempt %d", id, attempt)
	text, err := rows.MapJSON(labels)
	if err != nil {
		return fmt.Errorf("%s: labels: %w", op, err)
	}
	return s.leaderFenced(ctx, op, id, rows.Want{State: coordinator.Running, Attempt: attempt},
		`UPDATE builds SET state = 'queued', agent = '', lease_expires = 0, started = 0, waiting = '', `+withReason+`,
		labels = $4, `+requeued+` WHERE id = $1 AND attempt = $2 AND state = 'running'`, id, attempt, reason, text)
}

// Finish ends a running attempt with a result. attempt 0 ends a queued
// build whatever its attempt count (never dispatched, or sent back to the
// queue). The agent stays recorded; the lease and Waiting are cleared.
func (s *Store) Finish(ctx context.Context, id string, attempt int, result events.Result, message string) error {
	op := fmt.Sprintf("finish build %s attempt %d", id, attempt)
	if attempt == 0 {
		return s.fenced(ctx, op, id, rows.Want{State: coordinator.Queued, AnyAttempt: true},
			`UPDATE builds SET state = 'ended', result = $2, message = $3, ended = $4, lease_expires = 0, waiting = ''
			WHERE id = $1 AND state = 'queued'`, id, string(result), text(message), rows.Nanos(s.now()))
	}
	return s.leaderFenced(ctx, op, id, rows.Want{State: coordinator.Running, Attempt: attempt},
		`UPDATE builds SET state = 'ended', result = $3, message = $4, ended = $5, lease_expires = 0, waiting = ''
		WHERE id = $1 AND attempt = $2 AND state = 'running'`, id, attempt, string(result), text(message), rows.Nanos(s.now()))
}

// Retry queues an ended build again: the next Assign is its attempt+1,
// and reason is kept as why it exists. Result, message, agent and the
// times but its creation are cleared; it keeps its creation time, and so
// its place in Queued.
func (s *Store) Retry(ctx context.Context, id, reason string) error {
	return s.fenced(ctx, fmt.Sprintf("retry build %s", id), id,
		rows.Want{State: coordinator.Ended, AnyAttempt: true},
		`UPDATE builds SET state = 'queued', result = '', message = '', agent = '', lease_expires = 0, waiting = '',
		started = 0, ended = 0, `+strings.ReplaceAll(withReason, "$3", "$2")+`, `+requeued+` WHERE id = $1 AND state = 'ended'`, id, reason)
}

// fenced runs update, a single UPDATE whose WHERE names the build, the
// state and the attempt w (the fence), with args. It applies whole or not
// at all. When it changes no row the build is read to say why: missing is
// ErrNotFound; in another state or attempt ErrStale, saying what was
// expected and what was found.
func (s *Store) fenced(ctx context.Context, op, id string, w rows.Want, update string, args ...any) error {
	return s.fencedAs(ctx, false, op, id, w, update, args...)
}

// leaderFenced is fenced for a change only the leader makes: it applies
// only while this coordinator holds the role it claimed (see Elected),
// else it is coordinator.ErrNotLeader.
func (s *Store) leaderFenced(ctx context.Context, op, id string, w rows.Want, update string, args ...any) error {
	return s.fencedAs(ctx, true, op, id, w, update, args...)
}

func (s *Store) fencedAs(ctx context.Context, leaderOnly bool, op, id string, w rows.Want, update string, args ...any) error {
	var f *term
	if leaderOnly {
		f = s.fence()
		var fence string
		fence, args = f.clause(args)
		update += fence
	}
	err := func() error {
		n, err := s.exec(ctx, update, args...)
		if err != nil || n == 1 {
			return err
		}
		if err := s.notLeader(ctx, f); err != nil {
			return err
		}
		cur, err := s.current(ctx, id)
		if err != nil {
			return err
		}
		return w.Refusal(cur)
	}()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}

// current reads what a change that applied to no row met.
func (s *Store) current(ctx context.Context, id string) (rows.Current, error) {
	var cur rows.Current
	var state string
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	err := s.db.QueryRow(ctx, `SELECT state, attempt, waiting FROM builds WHERE id = $1`, id).
		Scan(&state, &cur.Attempt, &cur.Waiting)
	if errors.Is(err, pgx.ErrNoRows) {
		return cur, coordinator.ErrNotFound
	}
	cur.State = coordinator.State(state)
	return cur, err
}
