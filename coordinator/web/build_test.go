package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// aBuildsEvents are a build whose script paused while job "compile" ran
// (two commands, the second failing), and whose job "test", depending on
// it, is blocked; the script ran an action, "notes", meanwhile. The
// script's life is fixed (it has ended), so its paused share is too.
func aBuildsEvents() []events.Event {
	queued := func(job string, d time.Duration, deps ...string) events.Event {
		e := ev(events.JobQueued, job, d)
		e.Deps = deps
		return e
	}
	cmd := func(typ events.Type, index string, d time.Duration, exit *int) events.Event {
		e := ev(typ, "compile", d)
		e.Command, e.Exit = index, exit
		if typ == events.CommandStart {
			e.Line = "make step-" + index + " <&>"
		}
		return e
	}
	end := ev(events.JobEnd, "compile", 9*time.Second)
	end.Status, end.Exit = events.Failure, events.ExitCode(3)
	action := queued("notes", 9*time.Second)
	action.Action = true
	noted := ev(events.JobEnd, "notes", 10*time.Second)
	noted.Status = events.Success
	return []events.Event{
		ev(events.BuildStart, "", 0),
		ev(events.ScriptStart, "", time.Second),
		queued("compile", 2*time.Second),
		queued("test", 2*time.Second, "compile"),
		ev(events.JobStart, "compile", 2*time.Second),
		ev(events.ScriptPaused, "", 2*time.Second),
		cmd(events.CommandStart, "0", 3*time.Second, nil),
		cmd(events.CommandEnd, "0", 5*time.Second, events.ExitCode(0)),
		cmd(events.CommandStart, "1", 5*time.Second, nil),
		cmd(events.CommandEnd, "1", 9*time.Second, events.ExitCode(3)),
		end,
		ev(events.ScriptResumed, "", 9*time.Second),
		action,
		ev(events.JobStart, "notes", 9*time.Second),
		ev(events.JobBlocked, "test", 10*time.Second),
		noted,
		ev(events.ScriptEnd, "", 11*time.Second),
	}
}

func TestTheBuildPageShowsGraphTimelineAndCommands(t *testing.T) {
	f := newFixture(t)
	a := f.agent(t, "a1")
	b := f.running(t, a, "alpha")
	a.events(t, b.ID, aBuildsEvents()...)

	viewer := f.client(t, f.viewer)
	resp, body := viewer.get(t, "/builds/"+b.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the build page: %s", resp.Status)
	}
	for _, want := range []string{
		`<g class="node state-failure" data-job="compile">`, `<g class="node state-blocked" data-job="test">`, `class="edge"`,
		`aria-label="Legend of the job graph"`,
		`class="span paused"`, "Script paused <strong>70%</strong> of its life", "its CPU went to jobs",
		// Commands counted from 1, with their text; the failing one is the
		// second: exit 3 after 4 s.
		`id="job-compile"`, "<td>1</td>\n      <td class=\"line\"><code>make step-0 &lt;&amp;&gt;</code></td>",
		"<td>2</td>", "<td>3</td>", "4.0s",
		`data-src="/builds/` + b.ID + `/logs/compile?stream=out&amp;attempt=1"`, `/logs/~script?stream=err`,
		"a1", "running",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the build page lacks %q", want)
		}
	}
	if strings.Contains(body, "<button type=\"submit\" class=\"danger\">Cancel") || strings.Contains(body, "Unblock</button>") {
		t.Error("a viewer is shown buttons")
	}
	// The action is marked so, and only it.
	if notes := strings.Index(body, `id="job-notes"`); notes < 0 || strings.Count(body, `class="kind"`) != 1 || !strings.Contains(body[notes:], ">action</span></h2>") {
		t.Errorf("the build page does not mark the action notes, and only it, an action")
	}

	_, body = f.client(t, adminToken).get(t, "/builds/"+b.ID)
	for _, want := range []string{"/builds/" + b.ID + "/cancel", "/builds/" + b.ID + "/unblock", `name="job" value="test"`} {
		if !strings.Contains(body, want) {
			t.Errorf("an admin's build page lacks %q", want)
		}
	}
	if strings.Contains(body, "/retry") {
		t.Error("a running build offers a retry")
	}

	if resp, _ := viewer.get(t, "/builds/nosuchbuild"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown build: %s, want 404", resp.Status)
	}
}

func TestAViewerCannotChangeABuild(t *testing.T) {
	f := newFixture(t)
	b := f.trigger(t, "alpha")
	c := f.client(t, f.viewer)
	csrf := c.csrf(t)
	for _, action := range []string{"cancel", "retry", "unblock"} {
		if resp := c.post(t, "/builds/"+b.ID+"/"+action, url.Values{"csrf": {csrf}, "job": {"x"}}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("a viewer's %s: %s, want 403", action, resp.Status)
		}
	}
	if got := f.build(t, b.ID); got.State != "queued" {
		t.Errorf("the build is %s after a viewer's cancel", got.State)
	}
}

func TestAnAdminCancelsAndRetries(t *testing.T) {
	f := newFixture(t)
	b := f.trigger(t, "alpha")
	c := f.client(t, adminToken)
	if resp := c.post(t, "/builds/"+b.ID+"/cancel", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cancel without the CSRF token: %s, want 403", resp.Status)
	}
	if resp := c.post(t, "/builds/"+b.ID+"/cancel", url.Values{"csrf": {"0123456789abcdef0123456789abcdef"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cancel with a wrong CSRF token: %s, want 403", resp.Status)
	}
	csrf := c.csrf(t)
	resp := c.post(t, "/builds/"+b.ID+"/cancel", url.Values{"csrf": {csrf}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/builds/"+b.ID {
		t.Fatalf("cancel: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	if got := f.build(t, b.ID); got.State != "ended" || got.Result != events.Canceled {
		t.Fatalf("after cancel the build is %s %s", got.State, got.Result)
	}
	if resp := c.post(t, "/builds/"+b.ID+"/cancel", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("cancelling an ended build: %s, want 409", resp.Status)
	}
	_, body := c.get(t, "/builds/"+b.ID)
	if !strings.Contains(body, "/builds/"+b.ID+"/retry") {
		t.Error("an ended build offers no retry")
	}
	if resp := c.post(t, "/builds/"+b.ID+"/retry", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry: %s", resp.Status)
	}
	if got := f.build(t, b.ID); got.State != "queued" {
		t.Errorf("after retry the build is %s, want queued", got.State)
	}
	// The page says why the next attempt exists.
	if _, body := c.get(t, "/builds/"+b.ID); !strings.Contains(body, `<dt>Attempt 1</dt><dd class="attempt-reason">retried by admin</dd>`) {
		t.Errorf("the retried build's page does not say why attempt 1 exists:\n%s", body)
	}
	if resp := c.post(t, "/builds/nosuch/retry", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("retrying an unknown build: %s, want 404", resp.Status)
	}
}

func TestAnAdminUnblocksABlockedJob(t *testing.T) {
	f := newFixture(t)
	a := f.agent(t, "a1")
	b := f.running(t, a, "alpha")
	a.events(t, b.ID, aBuildsEvents()...)
	c := f.client(t, adminToken)
	csrf := c.csrf(t)
	if resp := c.post(t, "/builds/"+b.ID+"/unblock", url.Values{"csrf": {csrf}, "job": {"compile"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("unblocking a job that is not blocked: %s, want 409", resp.Status)
	}
	if resp := c.post(t, "/builds/"+b.ID+"/unblock", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unblocking no job: %s, want 400", resp.Status)
	}
	if resp := c.post(t, "/builds/"+b.ID+"/unblock", url.Values{"csrf": {csrf}, "job": {"test"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("unblock: %s", resp.Status)
	}
	m := a.recv(t, func(m *fleet.CoordinatorMessage) bool { return m.GetUnblock() != nil })
	if m.GetUnblock().GetJob() != "test" || m.GetUnblock().GetBuild().GetBuildId() != b.ID {
		t.Errorf("the agent was told %v", m.GetUnblock())
	}
}

func TestTheBuildStreamSendsNewEvents(t *testing.T) {
	f := newFixture(t)
	a := f.agent(t, "a1")
	b := f.running(t, a, "alpha")
	a.events(t, b.ID, ev(events.BuildStart, "", 0), ev(events.ScriptStart, "", time.Second))
	s := f.client(t, f.viewer).stream(t, "/builds/"+b.ID+"/events")
	first := sections(t, s.until(t, "build-summary"))
	for _, id := range []string{"build-summary", "build-graph", "build-timeline", "build-jobs"} {
		if first[id] == "" {
			t.Errorf("the first update lacks section %s", id)
		}
	}
	e := ev(events.JobQueued, "lint", 2*time.Second)
	a.events(t, b.ID, e, ev(events.JobStart, "lint", 2*time.Second))
	// The state itself: an update may show lint queued first.
	got := sections(t, s.until(t, `state-running\" data-job=\"lint\"`))
	if !regexp.MustCompile(`state-running" data-job="lint"`).MatchString(got["build-graph"]) {
		t.Errorf("the graph does not show lint running:\n%s", got["build-graph"])
	}
	a.done(t, b.ID, events.Success)
	got = sections(t, s.until(t, "status-success"))
	if !strings.Contains(got["build-summary"], "success") {
		t.Errorf("the summary does not say the build succeeded:\n%s", got["build-summary"])
	}

	if resp, _ := f.client(t, f.viewer).get(t, "/builds/nosuch/events"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("the stream of an unknown build: %s, want 404", resp.Status)
	}
}

// A running build's page looks again with the clock (its timeline grows),
// once a buildTick; an ended build's has nothing new to show until
// something changes, so its stream renders nothing more.
func TestOnlyARunningBuildsPageChangesWithTheClock(t *testing.T) {
	f := newFixture(t)
	clock := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	f.web.now = func() time.Time { return clock }
	a := f.agent(t, "a1")
	b := f.running(t, a, "alpha")
	key := func() string {
		t.Helper()
		k, err := f.web.buildKey(context.Background(), b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k1 := key()
	clock = clock.Add(buildTick / 2)
	if k2 := key(); k2 != k1 {
		t.Errorf("a running build's page changed within one tick:\n %q\n %q", k1, k2)
	}
	clock = clock.Add(buildTick)
	if k3 := key(); k3 == k1 {
		t.Errorf("a running build's page did not change after a tick: %q", k1)
	}
	a.done(t, b.ID, events.Success)
	if st := f.build(t, b.ID).State; st != coordinator.Ended {
		t.Fatalf("the build is %s after its end was acknowledged", st)
	}
	k4 := key()
	clock = clock.Add(10 * buildTick)
	if k5 := key(); k4 != k5 {
		t.Errorf("an ended build's page changed with the clock:\n %q\n %q", k4, k5)
	}
}
