// Package memstore is a coordinator.Store kept in memory: what a test of
// the coordinator's logic needs without SQLite, and a second reading of the
// Store contract (coordinator/storetest runs against both stores). It keeps
// nothing across a restart: no coordinator should run on it for real.
//
// One mutex guards everything; every method copies what it takes and what
// it returns, so a caller never shares a map with the store.
package memstore

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
)

// Store is an in-memory coordinator.Store.
type Store struct {
	now func() time.Time

	mu     sync.Mutex
	builds map[string]*build
	agents map[string]coordinator.Agent
	tokens map[string]coordinator.Token // by hash
	repos  map[string]*repo
}

var _ coordinator.Store = (*Store)(nil)

// New returns an empty store whose clock is now (time.Now when nil).
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{now: now, builds: map[string]*build{}, agents: map[string]coordinator.Agent{},
		tokens: map[string]coordinator.Token{}, repos: map[string]*repo{}}
}

// Close does nothing: there is nothing to flush.
func (s *Store) Close() error { return nil }

// lock takes the store's lock unless ctx has ended, as a database call
// would refuse to start.
func (s *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	return nil
}

// stamp is a time as a database keeps it: to the nanosecond, in UTC,
// without a monotonic reading; the zero time stays zero.
func stamp(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano()).UTC()
}

// cloneMap copies m; an empty map is nil, as the SQL store gives it back.
func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}
