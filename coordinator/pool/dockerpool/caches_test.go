package dockerpool_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A cache saved by a build on a pool's agent is there for the next build
// after the pool has scaled to zero (the agent's container and its state
// gone) and back to one.
func TestACacheOutlivesThePoolScalingToZero(t *testing.T) {
	rt := dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := startCoordinator(ctx, t, false)
	p, _ := newPool(ctx, t, rt, srv)
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": `
id: cached
image: ` + dockertest.Busybox + `
caches: [{id: deps, path: .deps}]
script: ["mkdir -p .deps && date > .deps/stamp"]
`})
	url := gittest.ServeHTTP(t, repo)
	for i, wantFrom := range []string{"", "branch:main"} {
		insts, err := p.Create(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		dockertest.Cleanup(t, map[string]string{engine.LabelAgent: insts[0].ID})
		waitForAgents(ctx, t, srv, rt, []string{insts[0].ID})
		b, err := srv.Coordinator.Trigger(ctx, coordinator.Build{Repo: "acme/app", Source: coordinator.Source{URL: url, Branch: "main", Commit: commit}})
		if err != nil {
			t.Fatal(err)
		}
		if b = waitForBuild(ctx, t, srv, b.ID); b.Result != events.Success {
			t.Fatalf("build %d ended %s: %s", i+1, b.Result, b.Message)
		}
		if from := cacheFrom(ctx, t, srv.Coordinator, b.ID); from != wantFrom {
			t.Errorf("build %d restored its cache from %q, want %q", i+1, from, wantFrom)
		}
		// The pool scales to zero: the instance and its folder go.
		if err := p.Destroy(ctx, insts[0].ID); err != nil {
			t.Fatal(err)
		}
	}
}

// cacheFrom is the scope a build's job restored its cache from.
func cacheFrom(ctx context.Context, t *testing.T, c *coordinator.Coordinator, build string) string {
	t.Helper()
	d, err := c.AdminServer().GetBuild(ctx, &fleet.GetBuildRequest{Id: build})
	if err != nil {
		t.Fatal(err)
	}
	for _, se := range d.GetEvents() {
		var e events.Event
		if err := json.Unmarshal(se.GetEvent(), &e); err == nil && e.Type == events.JobStart && len(e.Caches) == 1 {
			return e.Caches[0].From
		}
	}
	t.Fatalf("build %s: no job/start with a cache", build)
	return ""
}
