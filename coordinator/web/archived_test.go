package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	waitfor "github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// logViews are the dashboard's views of the sample output's streams.
var logViews = []string{
	"~script?stream=out", "~script?stream=err",
	"test?stream=all", "test?stream=out", "test?stream=err",
	"long?stream=out", "tiny?stream=err",
}

// The dashboard shows an ended build's logs, moved to the blob store, as
// it showed them on disk: the same pages, to the byte, the same sizes on
// the build's page, and the same text to a follower; one that followed
// the build live, as its logs moved, got it all too.
func TestAnArchivedBuildsLogsShowAsTheyDid(t *testing.T) {
	fleettest.EachBlobStore(t, func(t *testing.T, blobs blob.Store) {
		f := newFixture(t, func(c *coordinator.Config) { c.Blobs = blobs })
		a := f.agent(t, "a1")
		b := f.running(t, a, "alpha")
		a.events(t, b.ID, ev(events.JobStart, "test", 0), ev(events.JobStart, "long", time.Second), ev(events.JobStart, "tiny", time.Second))
		a.SendOutput(t, &fleet.BuildAttempt{BuildId: b.ID, Attempt: 1}, fleettest.SampleOutput(1))
		c := f.client(t, f.viewer)
		pages, sizes := allPages(t, c, b.ID), streamSizes(t, c, b.ID)
		if !strings.Contains(pages, "attempt 1, step 29 says hello") || len(sizes) != 9 {
			t.Fatalf("the running build's logs show as:\n%.2000s\n%q", pages, sizes)
		}
		live := map[string]*stream{}
		for _, v := range logViews {
			live[v] = c.stream(t, followPath(b.ID, v))
		}
		a.done(t, b.ID, events.Success)
		followedLive := map[string]string{}
		for _, v := range logViews {
			followedLive[v] = followed(t, live[v])
		}
		waitfor.For(t, "the build's logs to leave the disk", func() bool {
			_, err := os.Stat(filepath.Join(f.logs.Root(), "builds", b.ID))
			return os.IsNotExist(err)
		})

		if got := allPages(t, c, b.ID); got != pages {
			t.Errorf("archived, the pages show otherwise:\n%s", pageDiff(got, pages))
		}
		if got := streamSizes(t, c, b.ID); strings.Join(got, "\n") != strings.Join(sizes, "\n") {
			t.Errorf("archived, the build's page shows the streams as %q, want %q", got, sizes)
		}
		for _, v := range logViews {
			if !strings.Contains(followedLive[v], `"offset":`) {
				t.Errorf("following %s live: %q", v, followedLive[v])
			}
			if got := followed(t, c.stream(t, followPath(b.ID, v))); got != followedLive[v] {
				t.Errorf("following %s archived: %s", v, pageDiff(got, followedLive[v]))
			}
		}
	})
}

func followPath(build, view string) string {
	job, query, _ := strings.Cut(view, "?")
	return "/builds/" + build + "/logs/" + job + "/follow?" + query
}

// allPages is every page of every view, the tail first, then back to the
// start, headers and all.
func allPages(t *testing.T, c *client, build string) string {
	t.Helper()
	var b strings.Builder
	for _, v := range logViews {
		path := "/builds/" + build + "/logs/" + v
		for before := ""; ; {
			resp, body := c.get(t, path+before)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s%s: %s %s", path, before, resp.Status, body)
			}
			h := resp.Header
			fmt.Fprintf(&b, "%s%s: [%s, %s) of %s\n%s\n", v, before, h.Get("X-Log-Start"), h.Get("X-Log-End"), h.Get("X-Log-Size"), body)
			if h.Get("X-Log-Start") == "0" {
				break
			}
			before = "&before=" + h.Get("X-Log-Start")
		}
	}
	return b.String()
}

var streamSummary = regexp.MustCompile(`data-keep="([^"]+)"[^>]*>\s*<summary>[^<]*<span class="size">([^<]*)</span>`)

// streamSizes are the streams the build's page lists, with their sizes.
func streamSizes(t *testing.T, c *client, build string) []string {
	t.Helper()
	_, body := c.get(t, "/builds/"+build)
	var out []string
	for _, m := range streamSummary.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1]+" "+m[2])
	}
	return out
}

// followed reads a follower's stream to its end: the text it sent, and
// its end.
func followed(t *testing.T, s *stream) string {
	t.Helper()
	var html strings.Builder
	for {
		name, data := s.next(t)
		if name == "end" {
			return html.String() + "\nend: " + data
		}
		var m followMsg
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatal(err)
		}
		html.WriteString(m.HTML)
	}
}

// pageDiff shows the first line where got and want part.
func pageDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got  %.300s\n want %.300s", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}
