package pgstore

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/internal/rows"
	"github.com/monkeyci/monkeyci/coordinator/storetest"
	"github.com/monkeyci/monkeyci/internal/pgtest"
)

// open makes a store on a new database of srv, closed when t ends.
func open(t *testing.T, srv *pgtest.Server, now func() time.Time) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := OpenWith(ctx, srv.NewDatabase(t), Options{Now: now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// The store keeps the contract every coordinator.Store keeps.
func TestStoreContract(t *testing.T) {
	srv := pgtest.Start(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) coordinator.Store { return open(t, srv, now) })
}

// Coordinators that share a database keep the contract together.
func TestStoresSharingADatabase(t *testing.T) {
	srv := pgtest.Start(t)
	storetest.RunShared(t, func(t *testing.T) []coordinator.Store {
		dsn := srv.NewDatabase(t)
		var stores []coordinator.Store
		for range 3 {
			s, err := Open(context.Background(), dsn)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			t.Cleanup(func() { _ = s.Close() })
			stores = append(stores, s)
		}
		return stores
	})
}

// The typed insert (insertBuildWhere) names each column's type as the
// table has it: a wrong one would fail only the conditional inserts, or
// convert a value on the way.
func TestTheTypedInsertNamesTheTablesTypes(t *testing.T) {
	srv := pgtest.Start(t)
	s := open(t, srv, nil)
	columns := strings.Split(rows.BuildColumns+", event_key", ",")
	if len(columns) != len(buildTypes) {
		t.Fatalf("%d columns, %d types", len(columns), len(buildTypes))
	}
	for i, c := range columns {
		var typ string
		err := s.db.QueryRow(context.Background(), `SELECT format_type(atttypid, atttypmod) FROM pg_attribute
			WHERE attrelid = 'builds'::regclass AND attname = $1`, strings.TrimSpace(c)).Scan(&typ)
		if err != nil {
			t.Fatalf("column %s: %v", c, err)
		}
		if typ != buildTypes[i] {
			t.Errorf("column %s is %s, the insert says %s", strings.TrimSpace(c), typ, buildTypes[i])
		}
	}
}
