package coordinator_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A build takes the priority it asks for, else its repository's: when
// triggered by hand and when made by a webhook. A priority without a
// name is refused, saying which there are.
func TestABuildsPriorityIsItsOwnOrItsRepositorys(t *testing.T) {
	f := newFleet(t, 10*time.Second)
	ctx := context.Background()
	api := f.c.AdminServer()
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "/srv/git/app", WebhookSecret: "hook-secret", Priority: "low"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ asked, want string }{{"", "low"}, {"high", "high"}, {"normal", "normal"}} {
		info, err := api.Trigger(ctx, &fleet.TriggerRequest{Repo: "acme/app", Commit: commitN(1), Priority: tc.asked})
		if err != nil {
			t.Fatal(err)
		}
		if info.GetPriority() != tc.want {
			t.Errorf("asked %q: priority %q, want %q", tc.asked, info.GetPriority(), tc.want)
		}
	}
	d := &deliveries{t: t, f: f, url: f.webhooks(t).URL}
	if b, err := f.store.GetBuild(ctx, d.push("refs/heads/main", 2)); err != nil || b.Priority != coordinator.PriorityLow {
		t.Errorf("a webhook's build: priority %s (%v), want the repository's, low", b.Priority, err)
	}
	_, err := api.Trigger(ctx, &fleet.TriggerRequest{Repo: "acme/app", Priority: "urgent"})
	if status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != `--priority "urgent": say high, normal or low` {
		t.Errorf("priority urgent: %v, want InvalidArgument naming the three", err)
	}
}
