package sim

import (
	"context"

	"github.com/monkeyci/monkeyci/coordinator/pool"
)

// store keeps the scaler's state in memory: a simulated day has no
// restarts.
type store struct{ state pool.State }

func (s *store) LoadPool(context.Context) (pool.State, error) { return s.state, nil }

func (s *store) SavePool(_ context.Context, st pool.State) error {
	s.state = st
	return nil
}
