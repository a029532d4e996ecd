package coordinator_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Anyone may open a pull request from a fork, so its build gets none of the
// repository's secrets, and says so; a pull request from a branch of the
// repository itself gets them as a push does.
func TestAForksPullRequestGetsNoSecrets(t *testing.T) {
	f := newFleet(t, time.Minute)
	hooks := f.webhooks(t)
	ctx := context.Background()
	api := f.c.AdminServer()
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "/srv/git/app", WebhookSecret: "hook-secret"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.SetSecret(ctx, &fleet.SetSecretRequest{Repo: "acme/app", Key: "API_TOKEN", Value: []byte("s3cr3t")}); err != nil {
		t.Fatal(err)
	}
	_, deployKey := gittest.SSHKey(t)
	if _, err := api.SetSecret(ctx, &fleet.SetSecretRequest{Repo: "acme/app", Key: coordinator.DeployKeySecret, Value: []byte(deployKey)}); err != nil {
		t.Fatal(err)
	}
	a := fleettest.Dial(t, f.addr)
	a.Join(t, fleettest.Hello("raw", "join-secret", &fleet.Capacity{MilliCpus: 64000, Memory: 64 << 30}))

	pullRequest := func(number int, head, commit string) *fleet.Assign {
		t.Helper()
		body := fmt.Sprintf(`{"action": "opened", "number": %d,
			"pull_request": {"head": {"ref": "feature", "sha": %q, "repo": {"full_name": %q}}},
			"repository": {"full_name": "acme/app", "clone_url": "https://github.com/acme/app.git"},
			"sender": {"login": "mallory"}}`, number, commit, head)
		resp := postDelivery(t, hooks.URL, "pull_request", fmt.Sprintf("pr-%d", number), []byte(body), "hook-secret")
		answer := answerOf(t, resp)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("answered %d %v", resp.StatusCode, answer)
		}
		m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool {
			return m.GetAssign().GetBuild().GetBuildId() == answer["build"]
		})
		if err != nil {
			t.Fatal(err)
		}
		return m.GetAssign()
	}

	fork := pullRequest(1, "mallory/app", strings.Repeat("1", 40))
	if len(fork.GetSecrets()) != 0 {
		t.Errorf("a fork's pull request was sent the secrets %v", fork.GetSecrets())
	}
	b, err := f.store.GetBuild(ctx, fork.GetBuild().GetBuildId())
	if err != nil {
		t.Fatal(err)
	}
	if !b.Fork || !strings.Contains(b.Trigger, "from a fork, without secrets") {
		t.Errorf("the fork's build is %+v: want it marked a fork, saying its secrets are withheld", b)
	}

	own := pullRequest(2, "acme/app", strings.Repeat("2", 40))
	if got := own.GetSecrets()["API_TOKEN"]; got != "s3cr3t" {
		t.Errorf("a pull request from the repository's own branch got API_TOKEN %q, want its secret", got)
	}
	// The deploy key fetches either (it never reaches a job), and is no
	// job's secret.
	for _, as := range []*fleet.Assign{fork, own} {
		if as.GetSource().GetSshKey() != deployKey {
			t.Errorf("build %s's fetch got the deploy key %q, want the repository's", as.GetBuild().GetBuildId(), as.GetSource().GetSshKey())
		}
		if _, ok := as.GetSecrets()[coordinator.DeployKeySecret]; ok {
			t.Errorf("build %s's jobs were sent the deploy key as a secret", as.GetBuild().GetBuildId())
		}
	}
}

// A repository's depth setting goes to the fetch of each of its builds;
// a repository without one leaves the agent's default.
func TestARepositorysDepthGoesToTheFetch(t *testing.T) {
	f := newFleet(t, time.Minute)
	ctx := context.Background()
	api := f.c.AdminServer()
	a := fleettest.Dial(t, f.addr)
	a.Join(t, fleettest.Hello("raw", "join-secret", &fleet.Capacity{MilliCpus: 64000, Memory: 64 << 30}))
	zero, fifty := int32(0), int32(50)
	for _, tc := range []struct {
		name  string
		depth *int32
	}{{"acme/default", nil}, {"acme/all", &zero}, {"acme/fifty", &fifty}} {
		if _, err := api.AddRepo(ctx, &fleet.Repo{Name: tc.name, Url: "/srv/git/" + tc.name, Depth: tc.depth}); err != nil {
			t.Fatal(err)
		}
		info, err := api.Trigger(ctx, &fleet.TriggerRequest{Repo: tc.name, Branch: "main", Commit: strings.Repeat("3", 40)})
		if err != nil {
			t.Fatal(err)
		}
		m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign().GetBuild().GetBuildId() == info.GetId() })
		if err != nil {
			t.Fatal(err)
		}
		got := m.GetAssign().GetSource().Depth
		if (got == nil) != (tc.depth == nil) || got != nil && *got != *tc.depth {
			t.Errorf("%s: the fetch was sent depth %v, want %v", tc.name, got, tc.depth)
		}
	}
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "acme/bad", Url: "/srv/git/bad", Depth: new(int32(-1))}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a depth of -1: %v, want it refused", err)
	}
}

// A deploy key that ssh could not use is refused when it is set, saying
// why.
func TestADeployKeyIsCheckedWhenSet(t *testing.T) {
	f := newFleet(t, time.Minute)
	ctx := context.Background()
	api := f.c.AdminServer()
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "ssh://git@example.com/app.git"}); err != nil {
		t.Fatal(err)
	}
	public, _ := gittest.SSHKey(t)
	for _, bad := range []string{public, "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n"} {
		_, err := api.SetSecret(ctx, &fleet.SetSecretRequest{Repo: "acme/app", Key: coordinator.DeployKeySecret, Value: []byte(bad)})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not an SSH private key") {
			t.Errorf("setting the deploy key %.30q: %v, want it refused as not a private key", bad, err)
		}
	}
}
