package sqlstore

import (
	"context"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/events"
)

func TestPoolStateSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	s := openStore(t, path)
	empty, err := s.LoadPool(ctx)
	must(t, err)
	if len(empty.Instances) != 0 || !empty.LastUp.IsZero() {
		t.Fatalf("a new store has pool state: %+v", empty)
	}
	at := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	st := pool.State{
		Instances: map[string]*pool.Tracked{"i1": {ID: "i1", Created: at, Seen: at.Add(time.Minute), Agent: "a1", Draining: true, Phase: pool.Running}},
		LastUp:    at,
		Decisions: []pool.Decision{{Time: at, Type: events.PoolScaleUp, Instances: []string{"i1"}, Reason: "1 queued"}},
		Desired:   1,
	}
	must(t, s.SavePool(ctx, st))
	st.Desired = 2 // saved again: replaced, not added
	must(t, s.SavePool(ctx, st))
	must(t, s.Close())

	got, err := openStore(t, path).LoadPool(ctx)
	must(t, err)
	i1 := got.Instances["i1"]
	if i1 == nil || !i1.Draining || i1.Agent != "a1" || !i1.Seen.Equal(at.Add(time.Minute)) || !got.LastUp.Equal(at) || got.Desired != 2 ||
		len(got.Decisions) != 1 || got.Decisions[0].Type != events.PoolScaleUp {
		t.Fatalf("reopened: %+v (i1 %+v)", got, i1)
	}
}
