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
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// whenBuild: facts prints what the script read as parameters (they reach
// a declarative job's env); release runs for v* tags only, deploy for main
// only.
const whenBuild = `
- id: facts
  image: monkeyci/busybox:latest
  script: ['echo "tag=$tag branch=$branch commit=$commit"']
- id: release
  image: monkeyci/busybox:latest
  script: [echo releasing]
  when: {tag: "v*"}
- id: deploy
  image: monkeyci/busybox:latest
  script: [echo deploying]
  when: {branch: main}
`

// A tag pushed to GitHub builds the tag's commit with the tag among its
// parameters, and the build's `when` conditions are judged on it: the
// webhook stores the tag, the assignment carries it, the agent tells the
// script.
func TestATagPushBuildsWithItsTagInTheParams(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	f := newFleet(t, 10*time.Second)
	hooks := f.webhooks(t)

	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": whenBuild})
	r, err := git.PlainOpen(repo)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.CreateTag("v1.0.0", plumbing.NewHash(commit), &git.CreateTagOptions{
		Tagger: &object.Signature{Name: "Test", Email: "test@example.com", When: time.Now()}, Message: "v1.0.0",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := f.c.AdminServer().AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: repo, WebhookSecret: "hook-secret", Forge: "github"}); err != nil {
		t.Fatal(err)
	}
	f.startAgent(t, "a1", agent.Resources{MilliCPUs: 2000, Memory: 8 << 30})

	body := fmt.Sprintf(`{"ref":"refs/tags/v1.0.0","after":%q,"deleted":false,
		"repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git"},"sender":{"login":"alice"}}`, commit)
	resp := postDelivery(t, hooks.URL, "push", "tag-delivery", []byte(body), "hook-secret")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("tag push answered %d: %v", resp.StatusCode, answerOf(t, resp))
	}
	id, _ := answerOf(t, resp)["build"].(string)

	b := f.waitEnded(t, id)
	if b.Result != events.Success || b.Source.Tag != "v1.0.0" || b.Source.Commit != commit || b.Source.Branch != "" {
		t.Fatalf("build %+v: want success of tag v1.0.0 at %s, no branch", b, commit)
	}
	if got := jobLog(t, f, id, "facts"); got != "tag=v1.0.0 branch= commit="+commit+"\n" {
		t.Errorf("facts job printed %q", got)
	}
	if got := jobLog(t, f, id, "release"); got != "releasing\n" {
		t.Errorf("release job printed %q, want it run for the tag", got)
	}
	evs, err := f.store.Events(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var deploy []string
	for _, e := range evs {
		if e.Event.Job == "deploy" {
			deploy = append(deploy, fmt.Sprintf("%s %s %s", e.Event.Type, e.Event.Status, e.Event.Message))
		}
	}
	if len(deploy) != 1 || !strings.Contains(deploy[0], "skipped") || !strings.Contains(deploy[0], `when: branch "main", but the build is of no branch (it is of tag "v1.0.0")`) {
		t.Errorf("deploy's events %q, want one skip saying why", deploy)
	}

	// Triggered by the tag's name alone (monkeyci trigger --tag): the agent
	// fetches the tag's commit.
	info, err := f.c.AdminServer().Trigger(ctx, &fleet.TriggerRequest{Repo: "acme/app", Tag: "v1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	if b := f.waitEnded(t, info.GetId()); b.Result != events.Success || b.Source.Tag != "v1.0.0" {
		t.Fatalf("triggered build %+v", b)
	}
	if got := jobLog(t, f, info.GetId(), "facts"); got != "tag=v1.0.0 branch= commit="+commit+"\n" {
		t.Errorf("facts job of the triggered build printed %q", got)
	}
}

func jobLog(t *testing.T, f *fleetFixture, build, job string) string {
	t.Helper()
	return f.readLog(t, coordinator.LogKey{Build: build, Attempt: 1, Job: job, Stream: "out"})
}
