package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
)

func TestTheBuildsListFilters(t *testing.T) {
	f := newFixture(t)
	a1, a2, b1 := f.trigger(t, "alpha"), f.trigger(t, "alpha"), f.triggerOn(t, "beta", "feature/x&y")
	if err := f.c.Cancel(context.Background(), a2.ID); err != nil {
		t.Fatal(err)
	}
	c := f.client(t, f.viewer)
	if resp, _ := c.get(t, "/"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/builds" {
		t.Errorf("/ answered %s to %q, want 303 to /builds", resp.Status, resp.Header.Get("Location"))
	}
	for query, want := range map[string][]string{
		"":                         {a1.ID, a2.ID, b1.ID},
		"?repo=alpha":              {a1.ID, a2.ID},
		"?state=queued":            {a1.ID, b1.ID},
		"?repo=alpha&state=ended":  {a2.ID},
		"?repo=gamma":              {},
		"?state=nonsense&limit=-3": {a1.ID, a2.ID, b1.ID},
		"?limit=1":                 {b1.ID},
		"?branch=main":             {a1.ID, a2.ID},
		"?branch=feature%2Fx%26y":  {b1.ID},
	} {
		resp, body := c.get(t, "/builds"+query)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/builds%s: %s", query, resp.Status)
		}
		for _, id := range []string{a1.ID, a2.ID, b1.ID} {
			shown := strings.Contains(body, `href="/builds/`+id+`"`)
			if shown != slices.Contains(want, id) {
				t.Errorf("/builds%s: build %s shown %v, want %v", query, id, shown, !shown)
			}
		}
	}
	if _, body := c.get(t, "/builds?branch=feature%2Fx%26y"); !strings.Contains(body, "branch=feature%2Fx%26y&amp;state=") {
		t.Errorf("the list's live URL does not keep the branch, escaped:\n%s", body)
	}
	_, body := c.get(t, "/builds?repo=alpha")
	for _, want := range []string{"canceled", "queued", "main", "0123456789", "test", `<form class="filters"`, `value="alpha"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the list lacks %q", want)
		}
	}
}

func TestTheBuildsStreamSendsATriggeredBuild(t *testing.T) {
	f := newFixture(t)
	old := f.trigger(t, "alpha")
	c := f.client(t, f.viewer)
	s := c.stream(t, "/builds/events?repo=alpha")
	first := sections(t, s.until(t, old.ID))
	if !strings.Contains(first["builds-count"], "1 build") {
		t.Errorf("first update counts %q", first["builds-count"])
	}
	f.trigger(t, "beta") // filtered out
	b := f.trigger(t, "alpha")
	got := sections(t, s.until(t, b.ID))
	if !strings.Contains(got["builds-rows"], old.ID) || strings.Contains(got["builds-rows"], "beta") {
		t.Errorf("the update's rows are not alpha's two builds:\n%s", got["builds-rows"])
	}
}

// BenchmarkBuildsList measures the list of 1,000 builds as the page and
// its stream make it: two queries and the rendering of the rows.
func BenchmarkBuildsList(b *testing.B) {
	f := newFixture(b)
	thousandBuilds(b, f)
	ctx := context.Background()
	for b.Loop() {
		rows, err := f.web.rows(ctx, filter{Limit: 1000})
		if err != nil {
			b.Fatal(err)
		}
		_ = rowsHTML(rows)
	}
}

func thousandBuilds(t testing.TB, f *fixture) {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	for i := range 1000 {
		b := coordinator.Build{
			ID: fmt.Sprintf("%024x", i+1), Repo: fmt.Sprintf("repo-%d", i%7), Source: coordinator.Source{URL: "/x", Branch: "main", Commit: "abcdef0123456789"},
			State: coordinator.Ended, Result: "success", Attempt: 1, Agent: "agent-1", Created: now.Add(time.Duration(i) * time.Second),
			Started: now, Ended: now.Add(time.Minute), Trigger: "push to main by alice",
		}
		if err := f.store.CreateBuild(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAThousandBuildsAllRender(t *testing.T) {
	f := newFixture(t)
	thousandBuilds(t, f)
	c := f.client(t, f.viewer)
	start := time.Now()
	resp, body := c.get(t, "/builds?limit=1000")
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	if n := strings.Count(body, `<td class="mono"><a href="/builds/`); n != 1000 {
		t.Errorf("%d rows, want 1000", n)
	}
	t.Logf("1,000 builds: the page in %v over HTTP (bench/dashboard_test.go measures the server time)", took)
}
