package sqlstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
)

// The same forge event delivered again under another delivery id makes no
// second build also after the store is opened again: a restarted
// coordinator still knows. (The window and what counts as the same event
// are the store contract's: storetest.)
func TestTheSameEventDeliveredAgainMakesOneBuildAfterAReopen(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	ctx := context.Background()
	const push = "push refs/heads/main 0123456789abcdef0123456789abcdef01234567"
	first := coordinator.Build{ID: "b1", Repo: "acme/app", Source: coordinator.Source{URL: "u"}, Created: t0}
	if _, err := s.CreateDeliveredBuild(ctx, first, coordinator.Delivery{Forge: "github", ID: "d-1", Event: push, Since: t0.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())
	s = openStore(t, path)
	at := t0.Add(10 * time.Minute)
	again := coordinator.Build{ID: "c1", Repo: "acme/app", Source: coordinator.Source{URL: "u"}, Created: at}
	id, err := s.CreateDeliveredBuild(ctx, again, coordinator.Delivery{Forge: "github", ID: "d-2", Event: push, Since: at.Add(-time.Hour)})
	if !errors.Is(err, coordinator.ErrDuplicate) || id != "b1" {
		t.Errorf("after a reopen: %q, %v; want b1 and ErrDuplicate", id, err)
	}
	if _, err := s.GetBuild(ctx, "c1"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("the second delivery stored a build: %v", err)
	}
}
