package coordinator_test

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/internal/fleettest"
)

// A token revoked through another coordinator sharing the store ends the
// sessions open on this one: its own revocations it hears of at once,
// another's within a look at the store.
func TestATokenRevokedElsewhereEndsTheSessionsHere(t *testing.T) {
	_, store, logs := fleettest.Stores(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, h := range []string{"aaaa1111bbbb2222", "cccc3333dddd4444"} {
		if err := store.SaveToken(ctx, coordinator.Token{Hash: h, Kind: coordinator.TokenViewer, Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := coordinator.New(ctx, coordinator.Config{Store: store, Logs: logs, Elected: true, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	revoked := c.Revocations()
	if err := store.RevokeToken(ctx, "aaaa1111bbbb2222"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-revoked:
	case <-time.After(30 * time.Second):
		t.Fatal("a revocation made in the shared store was not heard of here")
	}
	if kind := c.TokenLive(ctx, "aaaa1111bbbb"); kind != "" {
		t.Errorf("the revoked token is still live here: %q", kind)
	}
}
