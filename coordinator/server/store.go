package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/logarchive"
	"github.com/monkeyci/monkeyci/coordinator/pgstore"
	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/coordinator/sqlstore"
)

// Store is the coordinator's state and its pool scaler's, in one database.
type Store interface {
	coordinator.Store
	pool.StateStore
}

// sharedLogs is a store that keeps the logs of running attempts too, for
// every coordinator sharing it.
type sharedLogs interface {
	LiveLogs() logarchive.Live
}

// OpenStore opens the database --database names: PostgreSQL for a
// postgres:// URL, shared by every coordinator given it; or, when it is
// empty, the SQLite file state.db in dataDir, one coordinator's own.
func OpenStore(ctx context.Context, database, dataDir string) (Store, error) {
	// Each opened store is returned as itself or as nil: an interface that
	// held a nil pointer would not be nil.
	switch {
	case database == "":
		s, err := sqlstore.Open(filepath.Join(dataDir, "state.db"))
		if err != nil {
			return nil, err
		}
		return s, nil
	case IsPostgres(database):
		s, err := pgstore.Open(ctx, database)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("--database %s: give a PostgreSQL URL (postgres://USER:PASSWORD@HOST:5432/DB?sslmode=require), or nothing for SQLite in the data dir", pgstore.Redacted(database))
}

// IsPostgres says a --database names PostgreSQL.
func IsPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}
