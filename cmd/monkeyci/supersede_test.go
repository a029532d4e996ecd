package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/monkeyci/monkeyci/forge"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Three pushes to one branch, through a real coordinator and agent: the
// first build is running (its job waits for an approval) when the others
// come; the newest is left running, and the two before it end canceled,
// each saying which newer build superseded it.
func TestThreePushesToABranchLeaveTheNewestRunning(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	c := startCoordinator(t, t.TempDir(), 10*time.Second)
	api := c.adminClient(t)
	startAgentProcess(t, c, "supersede-a1")

	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	const secret = "supersede-hook-secret"
	if _, err := api.AddRepo(context.Background(), &fleet.Repo{Name: "acme/app", Url: dir, WebhookSecret: secret}); err != nil {
		t.Fatal(err)
	}
	push := func(n int) string {
		t.Helper()
		commit := gittest.Commit(t, repo, dir, map[string]string{
			".monkeyci/build.yaml": "id: gate\nimage: monkeyci/busybox:latest\nscript: ['echo finished']\nblocked: true\n",
			"n":                    fmt.Sprint(n),
		})
		if err := repo.Storer.SetReference(plumbing.NewHashReference("refs/heads/feature", plumbing.NewHash(commit))); err != nil {
			t.Fatal(err)
		}
		body := []byte(fmt.Sprintf(`{"ref":"refs/heads/feature","after":%q,"repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git"},"sender":{"login":"alice"}}`, commit))
		req, _ := http.NewRequest(http.MethodPost, "http://"+c.http+"/webhooks/github", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprint("push-", n))
		forge.Sign(forge.GitHub, req.Header, body, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct{ Build, Error string }
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil || resp.StatusCode != http.StatusAccepted || a.Build == "" {
			t.Fatalf("push %d answered %s %+v (%v)", n, resp.Status, a, err)
		}
		return a.Build
	}

	first := push(1)
	if !wait.Poll(wait.Bound, func() bool { return gateBlocked(t, api, first) }) {
		t.Fatalf("the first build's job never waited for its approval within %s", wait.Bound)
	}
	second := push(2)
	third := push(3)

	pushed := []string{first, second, third}
	for i, id := range pushed[:2] {
		b := waitBuild(t, api, id, wait.Bound, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
		by, ok := strings.CutPrefix(b.GetMessage(), "superseded by build ")
		if b.GetResult() != "canceled" || !ok || !slices.Contains(pushed[i+1:], by) {
			t.Errorf("build %s ended %s %q, want canceled, superseded by a build pushed after it %v", id, b.GetResult(), b.GetMessage(), pushed[i+1:])
		}
	}
	if !wait.Poll(wait.Bound, func() bool { return gateBlocked(t, api, third) }) {
		d, _ := api.GetBuild(context.Background(), &fleet.GetBuildRequest{Id: third})
		t.Fatalf("the newest build is not running its job within %s: %+v", wait.Bound, d.GetBuild())
	}
	endAll(t, api)
}
