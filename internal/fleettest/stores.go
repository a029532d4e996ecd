package fleettest

import (
	"path/filepath"
	"testing"

	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/coordinator/sqlstore"
)

// Stores opens a coordinator's SQLite store and log store in a new temp
// dir, as a data dir holds them, closed when the test ends. It returns the
// dir too (for what else belongs there).
func Stores(t testing.TB) (string, *sqlstore.Store, *logstore.Store) {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlstore.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	logs, err := logstore.Open(filepath.Join(dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	return dir, store, logs
}
