package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
)

// The same forge event delivered again under another delivery id makes no
// second build within the window, also after the store is opened again;
// another event, another repository, or the window passed makes one.
func TestTheSameEventDeliveredAgainMakesOneBuild(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	ctx := context.Background()
	const push = "push refs/heads/main 0123456789abcdef0123456789abcdef01234567"
	first := coordinator.Build{ID: "b1", Repo: "acme/app", Source: coordinator.Source{URL: "u"}, Created: t0}
	if _, err := s.CreateDeliveredBuild(ctx, first, coordinator.Delivery{Forge: "github", ID: "d-1", Event: push, Since: t0.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())
	s = openStore(t, path) // durable: a restarted coordinator still knows
	tests := []struct {
		name  string
		repo  string
		event string
		at    time.Duration // after the first build
		dup   bool
	}{
		{"the same event, another delivery id", "acme/app", push, 10 * time.Minute, true},
		{"the same event, at the window's very end", "acme/app", push, time.Hour, true},
		{"the same event after the window", "acme/app", push, time.Hour + time.Second, false},
		{"another commit", "acme/app", "push refs/heads/main 89abcdef0123456789abcdef0123456789abcdef", time.Minute, false},
		{"another branch", "acme/app", "push refs/heads/dev 0123456789abcdef0123456789abcdef01234567", time.Minute, false},
		{"another repository", "acme/other", push, time.Minute, false},
		{"no event named", "acme/app", "", time.Minute, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at := t0.Add(tc.at)
			b := coordinator.Build{ID: fmt.Sprintf("c%d", i), Repo: tc.repo, Source: coordinator.Source{URL: "u"}, Created: at}
			id, err := s.CreateDeliveredBuild(ctx, b, coordinator.Delivery{Forge: "github", ID: fmt.Sprintf("e-%d", i), Event: tc.event, Since: at.Add(-time.Hour)})
			_, stored := s.GetBuild(ctx, b.ID)
			switch {
			case tc.dup && (!errors.Is(err, coordinator.ErrDuplicate) || id != "b1" || stored == nil):
				t.Errorf("got %q, %v (stored: %v), want b1 and ErrDuplicate, nothing stored", id, err, stored == nil)
			case !tc.dup && (err != nil || id != b.ID || stored != nil):
				t.Errorf("got %q, %v (%v), want a build of its own", id, err, stored)
			}
			if !tc.dup { // leave the store as it was for the next case
				if _, err := s.w.ExecContext(ctx, `DELETE FROM builds WHERE id = ?`, b.ID); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
