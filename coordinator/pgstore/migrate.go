package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
)

// ExportRows calls each with every row of table t, in its order (for
// `monkeyci migrate`).
func (s *Store) ExportRows(ctx context.Context, t rows.Table, each func([]any) error) error {
	rs, err := s.db.Query(ctx, `SELECT `+t.Names()+` FROM `+t.Name+` ORDER BY `+t.Order)
	if err != nil {
		return fmt.Errorf("read %s: %w", t.Name, err)
	}
	defer rs.Close()
	holders := t.Holders()
	for rs.Next() {
		if err := rs.Scan(holders...); err != nil {
			return fmt.Errorf("read %s: %w", t.Name, err)
		}
		if err := each(rows.Values(holders)); err != nil {
			return err
		}
	}
	return rs.Err()
}

// ImportRows fills the tables, in order, with the rows fill gives, in one
// transaction (by COPY: its triggers make the events' marks): all of them
// are stored or none. It refuses a database that holds any row in them.
func (s *Store) ImportRows(ctx context.Context, tables []rows.Table, fill func(rows.Table, func([]any) error) error) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		for _, t := range tables {
			var some bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+t.Name+`)`).Scan(&some); err != nil {
				return fmt.Errorf("look into %s: %w", t.Name, err)
			}
			if some {
				return fmt.Errorf("the database is not empty (%s has rows): migrate writes only into a new one", t.Name)
			}
		}
		for _, t := range tables {
			if err := copyTable(ctx, tx, t, fill); err != nil {
				return err
			}
		}
		return nil
	})
}

// copyTable copies into t the rows fill gives, as they come.
func copyTable(ctx context.Context, tx pgx.Tx, t rows.Table, fill func(rows.Table, func([]any) error) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan []any, 256)
	filled := make(chan error, 1)
	go func() {
		defer close(next)
		filled <- fill(t, func(v []any) error {
			select {
			case next <- v:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{t.Name}, names, pgx.CopyFromFunc(func() ([]any, error) {
		return <-next, nil // nil once fill has returned: the end
	}))
	cancel()
	for range next { // let fill return
	}
	if ferr := <-filled; ferr != nil && err == nil {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", t.Name, err)
	}
	return nil
}
