package coordinator_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Builds of branches, a pull request and a tag of one repository, through
// the coordinator to a real agent: each writes only its scope, a branch's
// first build reads the default branch's caches, and job/start says so.
func TestCacheScopesThroughTheCoordinator(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	f := newFleet(t, 10*time.Second)
	hooks := f.webhooks(t)
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": `
id: cached
image: monkeyci/busybox:latest
caches: [{id: deps, path: .deps}]
script:
  - mkdir -p .deps && cat .deps/count 2>/dev/null || echo none
  - echo "$(( $(cat .deps/count 2>/dev/null || echo 0) + 1 ))" > .deps/count
`})
	ctx := context.Background()
	api := f.c.AdminServer()
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: repo, WebhookSecret: "hook-secret", Forge: "github", DefaultBranch: "trunk"}); err != nil {
		t.Fatal(err)
	}
	f.startAgent(t, "a1", agent.Resources{MilliCPUs: 2000, Memory: 8 << 30})

	trigger := func(branch, tag string) string {
		info, err := api.Trigger(ctx, &fleet.TriggerRequest{Repo: "acme/app", Branch: branch, Tag: tag, Commit: commit})
		if err != nil {
			t.Fatal(err)
		}
		return info.GetId()
	}
	pullRequest := func(n int, branch, commit string) string {
		body := fmt.Sprintf(`{"action":"opened","number":%d,"pull_request":{"number":%d,"state":"open","draft":false,
			"head":{"ref":%q,"sha":%q,"repo":{"full_name":"someone/app"}},"base":{"ref":"trunk"}},
			"repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git"},"sender":{"login":"mallory"}}`, n, n, branch, commit)
		resp := postDelivery(t, hooks.URL, "pull_request", fmt.Sprintf("pr-%d-%d", n, time.Now().UnixNano()), []byte(body), "hook-secret")
		a := answerOf(t, resp)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("pull request answered %d: %v", resp.StatusCode, a)
		}
		return a["build"].(string)
	}
	steps := []struct {
		name  string
		start func() string
		scope coordinator.CacheScope
		saw   string
		from  string
	}{
		{"trunk's first", func() string { return trigger("trunk", "") }, coordinator.CacheScope{Scope: "branch:trunk"}, "none", ""},
		{"feature's first reads trunk's", func() string { return trigger("feature", "") },
			coordinator.CacheScope{Scope: "branch:feature", Fallback: "branch:trunk"}, "1", "branch:trunk"},
		{"feature's second its own", func() string { return trigger("feature", "") },
			coordinator.CacheScope{Scope: "branch:feature", Fallback: "branch:trunk"}, "2", "branch:feature"},
		{"trunk never sees feature's", func() string { return trigger("trunk", "") }, coordinator.CacheScope{Scope: "branch:trunk"}, "1", "branch:trunk"},
		{"a pull request of feature: its own only", func() string { return pullRequest(7, "feature", commit) }, coordinator.CacheScope{Scope: "pr:7"}, "none", ""},
		{"the pull request again, pushed to", func() string {
			opened, err := git.PlainOpen(repo)
			if err != nil {
				t.Fatal(err)
			}
			return pullRequest(7, "feature", gittest.Commit(t, opened, repo, map[string]string{"more.txt": "more"}))
		}, coordinator.CacheScope{Scope: "pr:7"}, "1", "pr:7"},
		{"a tag: its own only", func() string { return trigger("", "v1") }, coordinator.CacheScope{Scope: "tag:v1"}, "none", ""},
		{"trunk untouched by them all", func() string { return trigger("trunk", "") }, coordinator.CacheScope{Scope: "branch:trunk"}, "2", "branch:trunk"},
	}
	for _, s := range steps {
		id := s.start()
		b := f.waitEnded(t, id)
		if b.Result != events.Success || b.Cache != s.scope {
			t.Fatalf("%s: build %+v, want success in scope %+v", s.name, b, s.scope)
		}
		if saw := storedLog(t, f, id, "cached"); strings.TrimSpace(saw) != s.saw {
			t.Errorf("%s: the job saw %q, want %q", s.name, saw, s.saw)
		}
		evs, err := f.store.Events(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var caches []events.Cache
		for _, e := range evs {
			if e.Event.Type == events.JobStart {
				for _, c := range e.Event.Caches {
					if (c.From != "") != (c.Size > 0) {
						t.Errorf("%s: a cache restored says no size, or one not restored a size: %+v", s.name, c)
					}
					caches = append(caches, events.Cache{ID: c.ID, Scope: c.Scope, From: c.From})
				}
			}
		}
		want := []events.Cache{{ID: "deps", Scope: s.scope.Scope, From: s.from}}
		if fmt.Sprint(caches) != fmt.Sprint(want) {
			t.Errorf("%s: job/start caches %+v, want %+v", s.name, caches, want)
		}
	}
	detail, err := api.GetBuild(ctx, &fleet.GetBuildRequest{Id: pullRequest(8, "x", commit)})
	if err != nil || detail.GetBuild().GetPullRequest() != 8 || detail.GetBuild().GetCacheScope() != "pr:8" {
		t.Errorf("builds show of a pull request: %v %v", detail.GetBuild(), err)
	}
	f.waitEnded(t, detail.GetBuild().GetId())
}

// storedLog is a job's stdout as the coordinator stored it.
func storedLog(t *testing.T, f *fleetFixture, build, job string) string {
	t.Helper()
	return f.readLog(t, coordinator.LogKey{Build: build, Attempt: 1, Job: job, Stream: "out"})
}

// A registered local repository built at its HEAD, on a feature branch,
// writes that branch's caches, not the default branch's.
func TestALocalHeadOnAFeatureBranchHasItsBranchsScope(t *testing.T) {
	f := newFleet(t, time.Minute)
	dir, commit := gittest.Repo(t, map[string]string{"a.txt": "a"})
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference("refs/heads/feature", plumbing.NewHash(commit))); err != nil {
		t.Fatal(err)
	}
	if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, "refs/heads/feature")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	api := f.c.AdminServer()
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "local/app", Url: dir, DefaultBranch: "trunk"}); err != nil {
		t.Fatal(err)
	}
	info, err := api.Trigger(ctx, &fleet.TriggerRequest{Repo: "local/app"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.store.GetBuild(ctx, info.GetId())
	if err != nil {
		t.Fatal(err)
	}
	want := coordinator.CacheScope{Scope: "branch:feature", Fallback: "branch:trunk"}
	if b.Source.Branch != "feature" || b.Cache != want {
		t.Errorf("built branch %q in cache scope %+v, want feature in %+v", b.Source.Branch, b.Cache, want)
	}
}
