package pgstore

import (
	"context"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
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
