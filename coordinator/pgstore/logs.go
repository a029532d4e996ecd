package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
	"github.com/monkeyci/monkeyci/coordinator/logarchive"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
)

// Logs keeps the logs of running attempts in the database, as logstore
// keeps them on one coordinator's disk: streams addressed by byte offset,
// written idempotently (a chunk's bytes already stored are skipped, one
// past the end is refused as a gap), so that an agent resends from the
// size acknowledged. A write returns once committed: what is acknowledged
// survives the coordinator, and any coordinator sharing the database
// reads and follows it. The logs of ended attempts move to the blob store
// (logarchive) as from the disk.
type Logs struct {
	db *pgxpool.Pool
}

// Logs is the store's log streams.
func (s *Store) Logs() *Logs { return &Logs{db: s.db} }

// LiveLogs is Logs as the coordinator takes it.
func (s *Store) LiveLogs() logarchive.Live { return s.Logs() }

// followEvery is how often Follow looks for new bytes while none came.
const followEvery = 100 * time.Millisecond

// Write stores data at offset of the key's stream and returns the stream's
// stored size after it (logstore.Store's Write).
func (l *Logs) Write(key logstore.Key, offset int64, data []byte) (int64, error) {
	if err := key.Validate(); err != nil {
		return 0, err
	}
	if len(data) > logstore.MaxChunk {
		return 0, fmt.Errorf("%w: %d bytes (at most %d)", logstore.ErrTooLarge, len(data), logstore.MaxChunk)
	}
	if offset < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", logstore.ErrInvalid, offset)
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	var size int64
	err := pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) error {
		// The stream's row, locked until the commit: its writers take turns.
		err := tx.QueryRow(ctx, `INSERT INTO log_streams (build_id, attempt, job, stream) VALUES ($1, $2, $3, $4)
			ON CONFLICT (build_id, attempt, job, stream) DO UPDATE SET size = log_streams.size RETURNING size`,
			key.Build, key.Attempt, key.Job, key.Stream).Scan(&size)
		if err != nil {
			return err
		}
		end := offset + int64(len(data))
		switch {
		case offset > size:
			return fmt.Errorf("%w: %s: chunk at %d, stored %d", logstore.ErrGap, key, offset, size)
		case end <= size:
			return nil
		}
		if _, err := tx.Exec(ctx, `WITH c AS (INSERT INTO log_chunks (build_id, attempt, job, stream, start, data)
				VALUES ($1, $2, $3, $4, $5, $6))
			UPDATE log_streams SET size = $7 WHERE build_id = $1 AND attempt = $2 AND job = $3 AND stream = $4`,
			key.Build, key.Attempt, key.Job, key.Stream, size, data[size-offset:], end); err != nil {
			return err
		}
		size = end
		return nil
	})
	if err != nil {
		if errors.Is(err, logstore.ErrGap) {
			return size, err
		}
		return 0, fmt.Errorf("log %s: %w", key, err)
	}
	return size, nil
}

// Size returns the stored size of the key's stream (0: nothing stored).
func (l *Logs) Size(key logstore.Key) (int64, error) {
	if err := key.Validate(); err != nil {
		return 0, err
	}
	var size int64
	err := l.db.QueryRow(context.Background(), `SELECT size FROM log_streams
		WHERE build_id = $1 AND attempt = $2 AND job = $3 AND stream = $4`, key.Build, key.Attempt, key.Job, key.Stream).Scan(&size)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("log %s: %w", key, err)
	}
	return size, nil
}

// Sizes returns every stored stream of an attempt with its size, by job
// then stream.
func (l *Logs) Sizes(build string, attempt int) ([]logstore.Stream, error) {
	if err := (logstore.Key{Build: build, Attempt: attempt, Stream: logstore.Stdout}).Validate(); err != nil {
		return nil, err
	}
	rs, err := l.db.Query(context.Background(), `SELECT job, stream, size FROM log_streams
		WHERE build_id = $1 AND attempt = $2 AND size > 0 ORDER BY job, stream`, build, attempt)
	out, err := collect(rs, err, func(r rows.Scanner) (logstore.Stream, error) {
		st := logstore.Stream{Key: logstore.Key{Build: build, Attempt: attempt}}
		return st, r.Scan(&st.Job, &st.Stream, &st.Size)
	})
	if err != nil {
		return nil, fmt.Errorf("logs of build %s attempt %d: %w", build, attempt, err)
	}
	return out, nil
}

// Attempts returns the attempts of a build that have logs, in order.
func (l *Logs) Attempts(build string) ([]int, error) {
	rs, err := l.db.Query(context.Background(), `SELECT DISTINCT attempt FROM log_streams WHERE build_id = $1 ORDER BY attempt`, build)
	out, err := collect(rs, err, func(r rows.Scanner) (n int, err error) { return n, r.Scan(&n) })
	if err != nil {
		return nil, fmt.Errorf("logs of build %s: %w", build, err)
	}
	return out, nil
}

// Builds returns the builds that have logs here, in order.
func (l *Logs) Builds() ([]string, error) {
	rs, err := l.db.Query(context.Background(), `SELECT DISTINCT build_id FROM log_streams ORDER BY build_id`)
	out, err := collect(rs, err, func(r rows.Scanner) (id string, err error) { return id, r.Scan(&id) })
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	return out, nil
}

// WithLogs returns those of builds that have logs here, in one query.
func (l *Logs) WithLogs(builds []string) ([]string, error) {
	rs, err := l.db.Query(context.Background(), `SELECT DISTINCT build_id FROM log_streams WHERE build_id = ANY($1)`, builds)
	out, err := collect(rs, err, func(r rows.Scanner) (id string, err error) { return id, r.Scan(&id) })
	if err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	return out, nil
}

// ReadAt reads stored bytes of the key's stream at offset into p, like
// io.ReaderAt (io.EOF when fewer than len(p) are stored from offset on).
func (l *Logs) ReadAt(key logstore.Key, offset int64, p []byte) (int, error) {
	return l.readAt(context.Background(), key, offset, p)
}

func (l *Logs) readAt(ctx context.Context, key logstore.Key, offset int64, p []byte) (int, error) {
	if err := key.Validate(); err != nil {
		return 0, err
	}
	if offset < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", logstore.ErrInvalid, offset)
	}
	end := offset + int64(len(p))
	// The chunks that overlap [offset, end), cut to it by the database.
	rs, err := l.db.Query(ctx, `SELECT start, substring(data FROM greatest($5 - start, 0)::int + 1
			FOR (least(start + length(data), $6) - greatest(start, $5))::int)
		FROM log_chunks WHERE build_id = $1 AND attempt = $2 AND job = $3 AND stream = $4
			AND start < $6 AND start + length(data) > $5 ORDER BY start`,
		key.Build, key.Attempt, key.Job, key.Stream, offset, end)
	if err != nil {
		return 0, fmt.Errorf("log %s: %w", key, err)
	}
	defer rs.Close()
	n := 0
	for rs.Next() {
		var start int64
		var data []byte
		if err := rs.Scan(&start, &data); err != nil {
			return n, fmt.Errorf("log %s: %w", key, err)
		}
		at := max(start, offset) - offset
		if at != int64(n) { // chunks are contiguous: a hole is a fault
			return n, fmt.Errorf("log %s: bytes missing at %d", key, offset+int64(n))
		}
		n += copy(p[at:], data)
	}
	if err := rs.Err(); err != nil {
		return n, fmt.Errorf("log %s: %w", key, err)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Follow copies the key's stream to w from offset from on, then the bytes
// written after (by any coordinator), until ended is closed and all is
// copied, or ctx ends (logstore.Store's Follow). It looks for new bytes
// every followEvery while none came.
func (l *Logs) Follow(ctx context.Context, key logstore.Key, from int64, w io.Writer, ended <-chan struct{}) error {
	if err := key.Validate(); err != nil {
		return err
	}
	if from < 0 {
		return fmt.Errorf("%w: negative offset %d", logstore.ErrInvalid, from)
	}
	buf := make([]byte, 256<<10)
	for {
		isEnded := false
		select {
		case <-ended:
			isEnded = true // the size read after this is final
		default:
		}
		n, err := l.readAt(ctx, key, from, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			from += int64(n)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if n == len(buf) {
			continue
		}
		if isEnded {
			return nil
		}
		select {
		case <-time.After(followEvery):
		case <-ended:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// RemoveAttempt deletes the logs of one attempt of a build.
func (l *Logs) RemoveAttempt(build string, attempt int) error {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM log_chunks WHERE build_id = $1 AND attempt = $2`, build, attempt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM log_streams WHERE build_id = $1 AND attempt = $2`, build, attempt)
		return err
	})
	if err != nil {
		return fmt.Errorf("remove the logs of build %s attempt %d: %w", build, attempt, err)
	}
	return nil
}
