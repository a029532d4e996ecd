package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A repository with 50 builds queued and another with one, on one agent
// through a real coordinator: the one build is among the first two sent,
// not behind the 50.
func TestASingleBuildIsNotHeldBackByAnotherRepositorysQueue(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	c := startCoordinator(t, t.TempDir(), 10*time.Second)
	api := c.adminClient(t)
	ctx := context.Background()
	build := map[string]string{".monkeyci/build.yaml": "id: quick\nimage: monkeyci/busybox:latest\nscript: ['true']\n"}
	for _, name := range []string{"acme/busy", "acme/quiet"} {
		dir, _ := gittest.Repo(t, build)
		if _, err := api.AddRepo(ctx, &fleet.Repo{Name: name, Url: dir}); err != nil {
			t.Fatal(err)
		}
	}
	trigger := func(repo string) string {
		t.Helper()
		b, err := api.Trigger(ctx, &fleet.TriggerRequest{Repo: repo})
		if err != nil {
			t.Fatal(err)
		}
		return b.GetId()
	}
	for range 50 {
		trigger("acme/busy")
	}
	quiet := trigger("acme/quiet")

	// Every build is queued before the only agent comes.
	startAgentProcess(t, c, "fair-a1")
	started := waitBuild(t, api, quiet, wait.Bound, "started", func(b *fleet.BuildInfo) bool { return b.GetState() != "queued" }).GetStarted().AsTime()
	list, err := api.ListBuilds(ctx, &fleet.ListBuildsRequest{Repo: "acme/busy"})
	if err != nil {
		t.Fatal(err)
	}
	var before int
	for _, b := range list.GetBuilds() {
		if b.GetStarted() != nil && b.GetStarted().AsTime().Before(started) {
			before++
		}
	}
	if before > 1 {
		t.Errorf("%d of acme/busy's builds were sent before acme/quiet's one, want at most 1", before)
	}
	endAll(t, api)
}

// endAll cancels every build that has not ended and waits for their ends,
// so that the agent has removed their containers before the test's
// cleanup looks for any left.
func endAll(t *testing.T, api fleet.AdminClient) {
	t.Helper()
	all, err := api.ListBuilds(context.Background(), &fleet.ListBuildsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all.GetBuilds() {
		if b.GetState() != "ended" {
			_, _ = api.CancelBuild(context.Background(), &fleet.BuildRef{Id: b.GetId()})
		}
	}
	for _, b := range all.GetBuilds() {
		waitBuild(t, api, b.GetId(), wait.Bound, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	}
}

// --max-running 1, through a real coordinator and an agent with room for
// two builds: the repository's second build waits, saying it waits for
// the limit, until the first ends; then it runs, and the third waits.
func TestARepositorysMaxRunningHolds(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	c := startCoordinator(t, t.TempDir(), 10*time.Second)
	api := c.adminClient(t)
	ctx := context.Background()
	dir, _ := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": "id: gate\nimage: monkeyci/busybox:latest\nscript: ['echo finished']\nblocked: true\n"})
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "acme/capped", Url: dir, MaxRunning: 1}); err != nil {
		t.Fatal(err)
	}
	startAgentProcess(t, c, "capped-a1")
	var ids []string
	for range 3 {
		b, err := api.Trigger(ctx, &fleet.TriggerRequest{Repo: "acme/capped"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.GetId())
	}
	waitsForTheLimit := func(id string) {
		t.Helper()
		b := waitBuild(t, api, id, wait.Bound, "waiting for its repository's limit", func(b *fleet.BuildInfo) bool {
			return b.GetState() == "queued" && strings.Contains(b.GetWaiting(), "as many builds as it may at once (1,")
		})
		if b.GetState() != "queued" {
			t.Fatalf("build %s is %s, want queued", id, b.GetState())
		}
	}
	if !wait.Poll(wait.Bound, func() bool { return gateBlocked(t, api, ids[0]) }) {
		t.Fatalf("the first build did not run within %s", wait.Bound)
	}
	waitsForTheLimit(ids[1])
	waitsForTheLimit(ids[2])

	if _, err := api.UnblockJob(ctx, &fleet.UnblockJobRequest{Build: ids[0], Job: "gate"}); err != nil {
		t.Fatal(err)
	}
	waitBuild(t, api, ids[0], wait.Bound, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	if !wait.Poll(wait.Bound, func() bool { return gateBlocked(t, api, ids[1]) }) {
		t.Fatalf("the second build did not run within %s of the first's end", wait.Bound)
	}
	waitsForTheLimit(ids[2])
	endAll(t, api)
}
