package web

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// An admin triggers a build of a registered repository from the builds
// list, with its branch, parameters and priority, and lands on its page;
// a viewer sees no form and is refused; a form that says no repository or
// holds a line that is no parameter is answered 400, saying why, and
// queues nothing.
func TestAnAdminTriggersABuildFromTheDashboard(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.c.AdminServer().AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "https://example.com/acme/app.git"}); err != nil {
		t.Fatal(err)
	}
	admin := f.client(t, adminToken)
	if _, body := admin.get(t, "/builds"); !strings.Contains(body, `action="/builds/trigger"`) || !strings.Contains(body, `<option value="acme/app">`) {
		t.Fatalf("an admin's builds list has no trigger form for acme/app:\n%s", body)
	}
	csrf := admin.csrf(t)
	resp := admin.post(t, "/builds/trigger", url.Values{"csrf": {csrf}, "repo": {"acme/app"}, "branch": {"feature/x"},
		"params": {"env=staging\r\n\r\nnote=a=b\r\n"}, "priority": {"high"}})
	id, ok := strings.CutPrefix(resp.Header.Get("Location"), "/builds/")
	if resp.StatusCode != http.StatusSeeOther || !ok {
		t.Fatalf("trigger: %s to %q, want 303 to the build's page", resp.Status, resp.Header.Get("Location"))
	}
	if _, page := admin.get(t, "/builds/"+id); !strings.Contains(page, "<dt>Priority</dt><dd>high</dd>") {
		t.Errorf("the build's page does not say its priority:\n%s", page)
	}
	b := f.build(t, id)
	if b.Repo != "acme/app" || b.Source.Branch != "feature/x" || b.Params["env"] != "staging" || b.Params["note"] != "a=b" ||
		len(b.Params) != 2 || b.Priority != coordinator.PriorityHigh {
		t.Errorf("triggered %+v", b)
	}

	for _, tc := range []struct {
		form url.Values
		says string
	}{
		{url.Values{"repo": {""}}, "Say which repository"},
		{url.Values{"repo": {"acme/app"}, "params": {"env=ok\nnot a parameter"}}, "line 2"},
		{url.Values{"repo": {"acme/app"}, "priority": {"urgent"}}, "say high, normal or low"},
	} {
		tc.form.Set("csrf", csrf)
		resp, err := admin.hc.PostForm(admin.base+"/builds/trigger", tc.form)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.says) {
			t.Errorf("%v: %s, want 400 saying %q", tc.form, resp.Status, tc.says)
		}
	}

	viewer := f.client(t, f.viewer)
	if _, body := viewer.get(t, "/builds"); strings.Contains(body, `action="/builds/trigger"`) {
		t.Error("a viewer's builds list has the trigger form")
	}
	if resp := viewer.post(t, "/builds/trigger", url.Values{"csrf": {viewer.csrf(t)}, "repo": {"acme/app"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a viewer's trigger: %s, want 403", resp.Status)
	}
	if bs, _ := f.c.Builds(ctx, coordinator.BuildFilter{}); len(bs) != 1 {
		t.Errorf("%d builds queued, want only the admin's one", len(bs))
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
