// Package migrate copies a coordinator's state from one store to another
// (`monkeyci migrate`): from the SQLite file of a data dir to PostgreSQL,
// when one coordinator becomes several, or back. It copies the rows as
// they are: builds, their events, agents, tokens, repositories and their
// secrets (still sealed: the coordinators that read them need the same
// master key), the pool's state, and the logs of attempts that run or
// were not moved to the blob store yet. It writes only into an empty
// store: the rows in one transaction (all of them or none), then the logs,
// stream by stream; a copy whose logs failed leaves a store with the rows,
// to be dropped before a new try.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
	"github.com/monkeyci/monkeyci/coordinator/logarchive"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/coordinator/pgstore"
	"github.com/monkeyci/monkeyci/coordinator/server"
)

// store is what a store offers to be copied from and into.
type store interface {
	server.Store
	ExportRows(ctx context.Context, t rows.Table, each func([]any) error) error
	ImportRows(ctx context.Context, tables []rows.Table, fill func(rows.Table, func([]any) error) error) error
}

// end is one side of a copy: a store and its live logs.
type end struct {
	name  string
	store store
	logs  logarchive.Live
	close func()
}

// Progress is told what is copied, table by table.
type Progress func(what string, n int)

// Run copies the state at from into to: each a data dir (its state.db and
// logs/) or a postgres:// URL. to must be empty.
func Run(ctx context.Context, from, to string, progress Progress) error {
	if progress == nil {
		progress = func(string, int) {}
	}
	src, err := open(ctx, from, false)
	if err != nil {
		return fmt.Errorf("--from %s: %w", name(from), err)
	}
	defer src.close()
	dst, err := open(ctx, to, true)
	if err != nil {
		return fmt.Errorf("--to %s: %w", name(to), err)
	}
	defer dst.close()
	err = dst.store.ImportRows(ctx, rows.Tables, func(t rows.Table, insert func([]any) error) error {
		n := 0
		err := src.store.ExportRows(ctx, t, func(v []any) error {
			n++
			return insert(v)
		})
		if err == nil {
			progress(t.Name, n)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("copy from %s to %s: %w", src.name, dst.name, err)
	}
	n, err := copyLogs(src.logs, dst.logs)
	if err != nil {
		return fmt.Errorf("copy the logs from %s to %s: %w (the rest is copied: run again into a new, empty database to copy all)", src.name, dst.name, err)
	}
	progress("log streams", n)
	return nil
}

func name(place string) string {
	if server.IsPostgres(place) {
		return pgstore.Redacted(place)
	}
	return place
}

// open opens a side of the copy; a data dir to copy from must hold a
// coordinator's state.
func open(ctx context.Context, place string, create bool) (*end, error) {
	if place == "" {
		return nil, errors.New("say where: a coordinator's data dir, or postgres://USER:PASSWORD@HOST:5432/DB")
	}
	database, dataDir := place, ""
	if !server.IsPostgres(place) {
		database, dataDir = "", place
		if _, err := os.Stat(filepath.Join(dataDir, "state.db")); err != nil && !create {
			return nil, fmt.Errorf("no coordinator's state here (%w)", err)
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, err
		}
	}
	s, err := server.OpenStore(ctx, database, dataDir)
	if err != nil {
		return nil, err
	}
	st, ok := s.(store)
	if !ok {
		s.Close()
		return nil, errors.New("this store cannot be copied")
	}
	e := &end{name: name(place), store: st, close: func() { st.Close() }}
	if shared, ok := s.(interface{ LiveLogs() logarchive.Live }); ok {
		e.logs = shared.LiveLogs()
		return e, nil
	}
	disk, err := logstore.Open(filepath.Join(dataDir, "logs"))
	if err != nil {
		st.Close()
		return nil, err
	}
	e.logs, e.close = disk, func() { disk.Close(); st.Close() }
	return e, nil
}

// copyLogs copies every stream of src into dst and says how many.
func copyLogs(src, dst logarchive.Live) (int, error) {
	builds, err := src.Builds()
	if err != nil {
		return 0, err
	}
	n := 0
	buf := make([]byte, logstore.MaxChunk)
	for _, b := range builds {
		attempts, err := src.Attempts(b)
		if err != nil {
			return n, err
		}
		for _, a := range attempts {
			streams, err := src.Sizes(b, a)
			if err != nil {
				return n, err
			}
			for _, st := range streams {
				for off := int64(0); off < st.Size; {
					k, err := src.ReadAt(st.Key, off, buf[:min(int64(len(buf)), st.Size-off)])
					if err != nil && !errors.Is(err, io.EOF) {
						return n, err
					}
					if k == 0 {
						return n, fmt.Errorf("log %s: shorter than its size", st.Key)
					}
					if _, err := dst.Write(st.Key, off, buf[:k]); err != nil {
						return n, err
					}
					off += int64(k)
				}
				n++
			}
		}
	}
	return n, nil
}
