package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
)

// ExportRows calls each with every row of table t, in its order (for
// `monkeyci migrate`).
func (s *Store) ExportRows(ctx context.Context, t rows.Table, each func([]any) error) error {
	rs, err := s.r.QueryContext(ctx, `SELECT `+t.Names()+` FROM `+t.Name+` ORDER BY `+t.Order)
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
// transaction: all of them are stored or none. It refuses a database that
// holds any row in them.
func (s *Store) ImportRows(ctx context.Context, tables []rows.Table, fill func(rows.Table, func([]any) error) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	for _, t := range tables {
		var some bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+t.Name+`)`).Scan(&some); err != nil {
			return fmt.Errorf("look into %s: %w", t.Name, err)
		}
		if some {
			return fmt.Errorf("the database is not empty (%s has rows): migrate writes only into a new one", t.Name)
		}
	}
	for _, t := range tables {
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(t.Columns)), ", ")
		ins, err := tx.PrepareContext(ctx, `INSERT INTO `+t.Name+` (`+t.Names()+`) VALUES (`+marks+`)`)
		if err != nil {
			return fmt.Errorf("write %s: %w", t.Name, err)
		}
		err = fill(t, func(v []any) error {
			if _, err := ins.ExecContext(ctx, v...); err != nil {
				return fmt.Errorf("write %s: %w", t.Name, err)
			}
			return nil
		})
		ins.Close()
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}
