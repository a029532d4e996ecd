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
	switch {
	case database == "":
		return sqlstore.Open(filepath.Join(dataDir, "state.db"))
	case IsPostgres(database):
		return pgstore.Open(ctx, database)
	}
	return nil, fmt.Errorf("--database %s: give a PostgreSQL URL (postgres://USER:PASSWORD@HOST:5432/DB?sslmode=require), or nothing for SQLite in the data dir", pgstore.Redacted(database))
}

// IsPostgres says a --database names PostgreSQL.
func IsPostgres(database string) bool {
	return strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://")
}
