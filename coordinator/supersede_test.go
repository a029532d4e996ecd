package coordinator_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A forge event's build cancels the older queued builds of its branch or
// pull request, saying which build superseded them, and nothing else: not
// the default branch's, a tag's, another branch's or pull request's, a
// person's, nor any of a repository that keeps them.
func TestANewerPushSupersedesOnlyItsBranchsOrPullRequestsBuilds(t *testing.T) {
	type step struct {
		name string
		ev   func(d *deliveries, n int) string // the build's id
	}
	branch := func(b string) step {
		return step{"push to " + b, func(d *deliveries, n int) string { return d.push("refs/heads/"+b, n) }}
	}
	tag := step{"tag v1", func(d *deliveries, n int) string { return d.push("refs/tags/v1", n) }}
	pr := func(number int) step {
		return step{fmt.Sprint("pull request #", number), func(d *deliveries, n int) string { return d.pullRequest(number, n) }}
	}
	byHand := step{"triggered by hand on feature", func(d *deliveries, n int) string {
		info, err := d.f.c.AdminServer().Trigger(context.Background(), &fleet.TriggerRequest{Repo: "acme/app", Branch: "feature", Commit: commitN(n)})
		if err != nil {
			d.t.Fatal(err)
		}
		return info.GetId()
	}}
	tests := []struct {
		name          string
		keep          bool
		first, second step
		superseded    bool
	}{
		{"a branch's older build", false, branch("feature"), branch("feature"), true},
		{"another branch's build", false, branch("feature"), branch("other"), false},
		{"the default branch's build", false, branch("main"), branch("main"), false},
		{"a tag's build", false, branch("feature"), tag, false},
		{"a pull request's older build", false, pr(7), pr(7), true},
		{"another pull request's build", false, pr(7), pr(8), false},
		{"a branch's build, by a pull request of that branch", false, branch("feature"), pr(7), false},
		{"a build triggered by hand", false, byHand, branch("feature"), false},
		{"a branch's older build, in a repository that keeps them", true, branch("feature"), branch("feature"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(t, 10*time.Second)
			ctx := context.Background()
			if _, err := f.c.AdminServer().AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "/srv/git/app", WebhookSecret: "hook-secret", KeepSuperseded: tc.keep}); err != nil {
				t.Fatal(err)
			}
			d := &deliveries{t: t, f: f, url: f.webhooks(t).URL}
			older := tc.first.ev(d, 1)
			newer := tc.second.ev(d, 2)
			b, err := f.store.GetBuild(ctx, older)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.superseded && (b.State != coordinator.Ended || b.Result != events.Canceled || b.Message != "superseded by build "+newer):
				t.Errorf("after %s then %s, the first build is %s %s %q, want ended canceled, superseded by build %s",
					tc.first.name, tc.second.name, b.State, b.Result, b.Message, newer)
			case !tc.superseded && b.State != coordinator.Queued:
				t.Errorf("after %s then %s, the first build is %s %s %q, want still queued", tc.first.name, tc.second.name, b.State, b.Result, b.Message)
			}
			if nb, err := f.store.GetBuild(ctx, newer); err != nil || nb.State != coordinator.Queued {
				t.Errorf("the newer build is %+v (%v), want queued", nb, err)
			}
		})
	}
}

// deliveries posts GitHub deliveries for acme/app.
type deliveries struct {
	t   *testing.T
	f   *fleetFixture
	url string
	n   int
}

func commitN(n int) string { return fmt.Sprintf("%040x", n) }

func (d *deliveries) push(ref string, n int) string {
	body := fmt.Sprintf(`{"ref":%q,"after":%q,"repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git"},"sender":{"login":"alice"}}`,
		ref, commitN(n))
	return d.post("push", body)
}

func (d *deliveries) pullRequest(number, n int) string {
	body := fmt.Sprintf(`{"action":"synchronize","number":%d,"pull_request":{"number":%d,"state":"open","draft":false,
		"head":{"ref":"feature","sha":%q,"repo":{"full_name":"acme/app"}},"base":{"ref":"main"}},
		"repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git"},"sender":{"login":"alice"}}`, number, number, commitN(n))
	return d.post("pull_request", body)
}

func (d *deliveries) post(event, body string) string {
	d.t.Helper()
	d.n++
	resp := postDelivery(d.t, d.url, event, fmt.Sprint("delivery-", d.n), []byte(body), "hook-secret")
	a := answerOf(d.t, resp)
	id, _ := a["build"].(string)
	if resp.StatusCode != http.StatusAccepted || id == "" {
		d.t.Fatalf("%s answered %d %v", event, resp.StatusCode, a)
	}
	return id
}
