package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// chromiumPath is where Debian's chromium package puts its launcher.
const chromiumPath = "/usr/bin/chromium"

// Bounds of the browser test: generous, for a loaded machine.
const (
	browserBuildWait = 2 * time.Minute
	browserPageWait  = 60 * time.Second
)

// browserBuild is a build of three jobs: a, then b and c after it. While
// the script awaits them it is paused (monkeyci up pauses by default), so
// the timeline has paused spans.
const browserBuild = `- id: a
  image: monkeyci/busybox:latest
  script: ['echo job a says hi', 'sleep 1']
- id: b
  image: monkeyci/busybox:latest
  dependencies: [a]
  script: ['echo job b says hi', 'sleep 1']
- id: c
  image: monkeyci/busybox:latest
  dependencies: [a]
  script: ['echo job c says hi', 'sleep 1']
`

// requireChromium returns the chromium binary: without it the test is
// skipped, or fails under CI, which installs it.
func requireChromium(t *testing.T) string {
	t.Helper()
	if st, err := os.Stat(chromiumPath); err != nil || st.IsDir() {
		if dockertest.InCI() {
			t.Fatalf("%s is missing: install Debian's chromium package; .ci/run does", chromiumPath)
		}
		t.Skipf("%s is missing: the browser test needs Debian's chromium package (apt-get install chromium)", chromiumPath)
	}
	return chromiumPath
}

// browserOutputDir is where the screenshots go: $MONKEYCI_TEST_OUTPUT, or
// monkeyci-browser in the temp dir. Not under t.TempDir(), which goes with
// the test.
func browserOutputDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("MONKEYCI_TEST_OUTPUT")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "monkeyci-browser")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// consoleLog keeps what a page says in its console: errors fail the test,
// the rest is logged.
type consoleLog struct {
	mu             sync.Mutex
	errors, others []string
}

// listen is a chromedp listener: it runs on the browser's reading
// goroutine, so it only takes notes.
func (c *consoleLog) listen(ev any) {
	var msg string
	isError := false
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		var args []string
		for _, a := range e.Args {
			if a == nil {
				continue
			}
			if len(a.Value) > 0 {
				args = append(args, string(a.Value))
			} else {
				args = append(args, a.Description)
			}
		}
		msg = fmt.Sprintf("console.%s: %s", e.Type, strings.Join(args, " "))
		isError = e.Type == runtime.ConsoleAPICalledTypeError
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		if d == nil {
			return
		}
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		msg = fmt.Sprintf("exception at %s:%d: %s", d.URL, d.LineNumber, text)
		isError = true
	case *log.EventEntryAdded:
		if e.Entry == nil {
			return
		}
		msg = fmt.Sprintf("log %s/%s: %s (%s)", e.Entry.Source, e.Entry.Level, e.Entry.Text, e.Entry.URL)
		isError = e.Entry.Level == log.EntryLevelError
	default:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if isError {
		c.errors = append(c.errors, msg)
	} else {
		c.others = append(c.others, msg)
	}
}

func (c *consoleLog) take() (errors, others []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errors...), append([]string(nil), c.others...)
}

// browserRun runs one action within browserPageWait.
func browserRun[T any](t *testing.T, ctx context.Context, out *syncbuf.Buffer, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, browserPageWait)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v\nbrowser output:\n%s", what, err, out)
	}
	return v
}

// buildPageFacts is what the test reads off a build's page.
type buildPageFacts struct {
	Nodes []struct {
		Job   string `json:"job"`
		Class string `json:"class"`
	} `json:"nodes"`
	Edges  int    `json:"edges"`
	Legend int    `json:"legend"`
	Rows   int    `json:"rows"`
	Paused int    `json:"paused"`
	Status string `json:"status"`
	Share  string `json:"share"`
}

const buildPageFactsJS = `(() => ({
	nodes: Array.from(document.querySelectorAll('#build-graph svg.job-graph:not(.graph-legend) g.node')).map(g => ({job: g.dataset.job, class: g.getAttribute('class')})),
	edges: document.querySelectorAll('#build-graph svg.job-graph:not(.graph-legend) path.edge').length,
	legend: document.querySelectorAll('#build-graph svg.graph-legend [data-legend]').length,
	rows: document.querySelectorAll('#build-timeline svg.timeline g.row').length,
	paused: document.querySelectorAll('#build-timeline svg.timeline rect.span.paused').length,
	status: (document.querySelector('#build-summary h1 .status') || {}).textContent || '',
	share: (document.querySelector('#build-timeline .paused-share') || {}).textContent || '',
}))()`

// TestBrowserDashboardShowsAPausedBuild drives the real `monkeyci up` and a
// real headless Chromium: a build of three jobs whose script gets paused
// runs to success; then the browser signs in with the admin token, finds
// the build in the builds list, and its page shows a graph of three jobs
// and a timeline with the script's pauses, with no error in the console.
// A full-page screenshot of the build's page is kept (its path is logged).
func TestBrowserDashboardShowsAPausedBuild(t *testing.T) {
	chromium := requireChromium(t)
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": browserBuild})
	p := startUp(t)
	api := p.admin(t)

	t0 := time.Now()
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	id := b.GetId()
	ended := waitBuild(t, api, id, browserBuildWait, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	if ended.GetResult() != "success" {
		t.Fatalf("build %s ended %s: %s; monkeyci up's stderr:\n%s", id, ended.GetResult(), ended.GetMessage(), p.stderr)
	}
	t.Logf("build %s succeeded after %s", id, time.Since(t0).Round(time.Millisecond))

	// The browser: headless, no sandbox (tests run as root in containers).
	out := &syncbuf.Buffer{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.CombinedOutput(out),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	console := &consoleLog{}
	bctx, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithListener(console.listen))
	defer cancelBrowser()
	// The first run starts the browser, which lives as long as the context
	// of that run: no timeout on it, a watchdog instead.
	watchdog := time.AfterFunc(browserPageWait, cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v\nbrowser output:\n%s", chromium, err, out)
	}
	watchdog.Stop()

	base := "http://" + p.http
	outDir := browserOutputDir(t)

	// Sign in.
	resp := browserRun(t, bctx, out, "opening /login", chromedp.NavigateResponse(base+"/login"))
	if resp.Status != 200 {
		t.Fatalf("GET /login answered %d", resp.Status)
	}
	token := chromedp.CSS(`form input[name="token"]`)
	browserRun(t, bctx, out, "typing the token", chromedp.Steps(chromedp.WaitVisible(token), chromedp.SendKeys(token, p.token)))
	sctx, cancelSubmit := context.WithTimeout(bctx, browserPageWait)
	resp, err = chromedp.RunResponse(sctx, chromedp.Submit(token))
	cancelSubmit()
	if err != nil {
		t.Fatalf("browser: submitting the login form: %v\nbrowser output:\n%s", err, out)
	}
	if resp.Status != 200 {
		t.Fatalf("signing in: the page after the login form answered %d", resp.Status)
	}
	if loc := browserRun(t, bctx, out, "reading the location", chromedp.Location()); loc != base+"/builds" {
		t.Fatalf("signing in led to %s, want %s/builds", loc, base)
	}

	// The builds list has the build, ended in success.
	browserRun(t, bctx, out, "waiting for the build in the builds list", chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(`#builds-rows`)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`Array.from(document.querySelectorAll('#builds-rows tr')).some(tr =>
			tr.querySelector('a[href="/builds/%s"]') && (tr.querySelector('.status') || {}).textContent === 'success')`, url.PathEscape(id)),
			chromedp.WithPollingTimeout(browserPageWait)),
	))
	count := browserRun(t, bctx, out, "reading the builds count", chromedp.Text(chromedp.CSS(`#builds-count`)))
	if strings.TrimSpace(count) != "1 build" {
		t.Errorf("the builds list counts %q, want 1 build", count)
	}
	listShot := browserRun(t, bctx, out, "taking the builds list's screenshot", chromedp.FullScreenshot(100))
	writeShot(t, filepath.Join(outDir, "builds.png"), listShot)

	// The build's page: a graph of three jobs, a timeline with pauses.
	resp = browserRun(t, bctx, out, "opening the build's page", chromedp.NavigateResponse(base+"/builds/"+url.PathEscape(id)))
	if resp.Status != 200 {
		t.Fatalf("GET /builds/%s answered %d", id, resp.Status)
	}
	browserRun(t, bctx, out, "waiting for the graph and the timeline", chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(`#build-graph svg.job-graph g.node`)),
		chromedp.WaitVisible(chromedp.CSS(`#build-timeline svg.timeline`)),
	))
	facts := browserRun(t, bctx, out, "reading the build's page", chromedp.Evaluate[buildPageFacts](buildPageFactsJS))
	t.Logf("build page: %d graph nodes %+v, %d edges, %d timeline rows, %d paused spans, status %q, %q",
		len(facts.Nodes), facts.Nodes, facts.Edges, facts.Rows, facts.Paused, facts.Status, strings.TrimSpace(facts.Share))
	if len(facts.Nodes) != 3 {
		t.Errorf("the graph has %d nodes, want 3 (a, b, c)", len(facts.Nodes))
	}
	for i, want := range []string{"a", "b", "c"} {
		if i < len(facts.Nodes) && (facts.Nodes[i].Job != want || !strings.Contains(" "+facts.Nodes[i].Class+" ", " state-success ")) {
			t.Errorf("graph node %d is %+v, want job %s in state success", i, facts.Nodes[i], want)
		}
	}
	if facts.Edges != 2 {
		t.Errorf("the graph has %d edges, want 2 (a to b, a to c)", facts.Edges)
	}
	if facts.Legend < 8 { // seven looks of a node, and the arrow
		t.Errorf("the graph's legend explains %d things, want 8", facts.Legend)
	}
	if facts.Paused < 1 {
		t.Errorf("the timeline has no paused span (rect.span.paused): the script was never shown paused")
	}
	if facts.Rows != 4 {
		t.Errorf("the timeline has %d rows, want 4 (the script and three jobs)", facts.Rows)
	}
	if facts.Status != "success" {
		t.Errorf("the build's page says %q, want success", facts.Status)
	}

	// A log pane loads its job's output when opened: the first, stdout and
	// stderr merged, under each command's line.
	pane := chromedp.CSS(`#job-a details.log summary`)
	browserRun(t, bctx, out, "opening job a's output", chromedp.Steps(
		chromedp.WaitVisible(pane),
		chromedp.Click(pane),
		chromedp.Poll[chromedp.Void](`(document.querySelector('#job-a details.log pre.ansi') || {textContent: ''}).textContent.includes('job a says hi')`,
			chromedp.WithPollingTimeout(browserPageWait)),
	))
	heading := browserRun(t, bctx, out, "reading job a's first command", chromedp.Evaluate[string](
		`(document.querySelector('#job-a details.log pre.ansi .cmd') || {textContent: ''}).textContent`))
	if heading != "#1 $ echo job a says hi" {
		t.Errorf("job a's output is headed %q, want its first command, #1 $ echo job a says hi", heading)
	}

	shot := browserRun(t, bctx, out, "taking the build page's screenshot", chromedp.FullScreenshot(100))
	writeShot(t, filepath.Join(outDir, "build.png"), shot)

	// A last round trip, so that what the page said before it has come.
	browserRun(t, bctx, out, "a last round trip", chromedp.Evaluate[int](`1`))
	errs, others := console.take()
	for _, m := range others {
		t.Logf("browser console: %s", m)
	}
	for _, m := range errs {
		t.Errorf("browser console error: %s", m)
	}
}

// writeShot keeps a screenshot and logs where.
func writeShot(t *testing.T, path string, png []byte) {
	t.Helper()
	if len(png) == 0 {
		t.Fatalf("empty screenshot for %s", path)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot (%d bytes): %s", len(png), path)
}
