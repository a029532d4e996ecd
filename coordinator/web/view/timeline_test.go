package view

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/events"
)

func spansOf(r Row, kind string) []Span {
	var out []Span
	for _, s := range r.Spans {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestTimelineTwoPauses(t *testing.T) {
	s := time.Second
	evs := []events.Event{
		ev(events.BuildStart, "", 0),
		ev(events.ScriptStart, "", s),
		ev(events.JobQueued, "a", 1500*time.Millisecond),
		ev(events.ScriptPaused, "", 2*s),
		ev(events.JobStart, "a", 2*s),
		{Type: events.JobEnd, Job: "a", Status: events.Success, Time: at(4 * s)},
		{Type: events.ScriptResumed, Time: at(4 * s), Duration: 2 * s},
		ev(events.ScriptPaused, "", 5*s),
		{Type: events.ScriptResumed, Time: at(6 * s), Duration: s},
		{Type: events.ScriptEnd, Status: events.Success, Time: at(11 * s)},
		ev(events.BuildEnd, "", 20*s),
	}
	tl := BuildTimeline(evs, at(time.Hour)) // now is ignored: the build ended
	if !tl.Start.Equal(at(0)) || !tl.End.Equal(at(20*s)) {
		t.Errorf("timeline %v..%v, want t0..t0+20s", tl.Start, tl.End)
	}
	if tl.Paused != 3*s || tl.ScriptTime != 10*s || !near(tl.PausedShare, 0.3) {
		t.Errorf("paused %v of %v (%v), want 3s of 10s (0.3)", tl.Paused, tl.ScriptTime, tl.PausedShare)
	}
	if len(tl.Rows) != 2 || tl.Rows[0].Kind != RowScript || tl.Rows[1].Kind != RowJob || tl.Rows[1].Label != "a" {
		t.Fatalf("rows %+v", tl.Rows)
	}
	script := tl.Rows[0]
	paused := spansOf(script, KindPaused)
	if len(paused) != 2 || !paused[0].Start.Equal(at(2*s)) || !paused[0].End.Equal(at(4*s)) ||
		!paused[1].Start.Equal(at(5*s)) || !paused[1].End.Equal(at(6*s)) {
		t.Errorf("paused spans %+v", paused)
	}
	if !near(paused[0].Left, 10) || !near(paused[0].Width, 10) || paused[0].State != "paused" {
		t.Errorf("first pause at %v%% wide %v%%, want 10, 10: %+v", paused[0].Left, paused[0].Width, paused[0])
	}
	running := spansOf(script, KindRunning)
	if len(running) != 3 || running[2].State != StateSuccess || running[0].State != StateRunning {
		t.Errorf("script running spans %+v", running)
	}
	if script.State != StateSuccess {
		t.Errorf("script row state %q", script.State)
	}
	job := tl.Rows[1]
	if len(job.Spans) != 2 || job.Spans[0].Kind != KindQueued || job.Spans[1].Kind != KindRunning ||
		job.Spans[1].State != StateSuccess || !job.Spans[0].End.Equal(at(2*s)) || job.State != StateSuccess {
		t.Errorf("job spans %+v", job.Spans)
	}
	if got := job.Spans[1].Title; got != "a: running 2.0s, success" {
		t.Errorf("title %q", got)
	}
}

func TestTimelineOpenSpansRunToNow(t *testing.T) {
	s := time.Second
	evs := []events.Event{
		ev(events.BuildStart, "", 0),
		ev(events.ScriptStart, "", s),
		ev(events.JobQueued, "a", 2*s),
		ev(events.ScriptPaused, "", 2*s),
		ev(events.JobStart, "a", 3*s),
		ev(events.JobQueued, "b", 4*s),
	}
	now := at(10 * s)
	tl := BuildTimeline(evs, now)
	if !tl.End.Equal(now) {
		t.Errorf("end %v, want now", tl.End)
	}
	pause := spansOf(tl.Rows[0], KindPaused)
	if len(pause) != 1 || !pause[0].End.Equal(now) || tl.Paused != 8*s || tl.ScriptTime != 9*s {
		t.Errorf("open pause %+v, paused %v of %v", pause, tl.Paused, tl.ScriptTime)
	}
	a := tl.Rows[1].Spans
	if len(a) != 2 || !a[1].End.Equal(now) || a[1].State != StateRunning || !near(a[1].Left+a[1].Width, 100) {
		t.Errorf("running job spans %+v", a)
	}
	b := tl.Rows[2].Spans
	if len(b) != 1 || b[0].Kind != KindQueued || !b[0].End.Equal(now) {
		t.Errorf("queued job spans %+v", b)
	}

	// A clock behind the agent's: the timeline still covers every event.
	if tl := BuildTimeline(evs, at(0)); !tl.End.Equal(at(4 * s)) {
		t.Errorf("end %v with now in the past, want the last event", tl.End)
	}
}

func TestTimelineMinimumWidthAndClamping(t *testing.T) {
	evs := []events.Event{
		ev(events.BuildStart, "", 0),
		ev(events.ScriptStart, "", 0),
		ev(events.ScriptPaused, "", time.Hour-20*time.Millisecond),
		{Type: events.ScriptResumed, Time: at(time.Hour), Duration: 20 * time.Millisecond},
		ev(events.ScriptEnd, "", time.Hour),
		ev(events.BuildEnd, "", time.Hour),
	}
	tl := BuildTimeline(evs, at(2*time.Hour))
	p := spansOf(tl.Rows[0], KindPaused)
	if len(p) != 1 || p[0].Width != MinSpanWidth || !near(p[0].Left+p[0].Width, 100) {
		t.Errorf("a 20ms pause at the end: %+v", p)
	}
	if !near(tl.PausedShare, float64(20*time.Millisecond)/float64(time.Hour)) {
		t.Errorf("share %v", tl.PausedShare)
	}
	for _, r := range tl.Rows {
		for _, s := range r.Spans {
			if s.Left < 0 || s.Width <= 0 || s.Left+s.Width > 100+1e-9 {
				t.Errorf("span out of bounds %+v", s)
			}
		}
	}
}

func TestTimelineOddInput(t *testing.T) {
	now := at(time.Minute)
	// Nothing at all.
	tl := BuildTimeline(nil, now)
	if len(tl.Rows) != 1 || len(tl.Rows[0].Spans) != 0 || tl.PausedShare != 0 || !tl.Start.Equal(now) {
		t.Errorf("empty timeline %+v", tl)
	}
	_ = tl.SVG()
	// A resume without its pause: the pause comes from its duration. A job
	// skipped: a row without spans. Events without time: ignored.
	evs := []events.Event{
		ev(events.ScriptStart, "", 0),
		{Type: events.ScriptResumed, Time: at(5 * time.Second), Duration: 2 * time.Second},
		ev(events.JobSkipped, "docs", time.Second),
		{Type: events.JobStart, Job: "nil-time"},
	}
	tl = BuildTimeline(evs, now)
	if p := spansOf(tl.Rows[0], KindPaused); len(p) != 1 || !p[0].Start.Equal(at(3*time.Second)) || tl.Paused != 2*time.Second {
		t.Errorf("pause from resume: %+v", p)
	}
	if len(tl.Rows) != 3 || tl.Rows[2].Label != "nil-time" || tl.Rows[1].State != StateSkipped || len(tl.Rows[1].Spans) != 0 {
		t.Errorf("rows %+v", tl.Rows)
	}
	// Blocked while queued.
	evs = []events.Event{
		ev(events.JobQueued, "a", 0),
		ev(events.JobBlocked, "a", time.Second),
		ev(events.JobUnblocked, "a", 2*time.Second),
		{Type: events.JobEnd, Job: "a", Status: events.Canceled, Time: at(3 * time.Second)},
	}
	got := BuildTimeline(evs, now).Rows[1]
	if len(got.Spans) != 3 || got.Spans[1].State != StateBlocked || got.Spans[2].Kind != KindQueued || got.State != StateCanceled {
		t.Errorf("blocked job %+v", got)
	}
}

func TestTimelineSVG(t *testing.T) {
	s := time.Second
	evs := []events.Event{
		ev(events.BuildStart, "", 0),
		ev(events.ScriptStart, "", 0),
		ev(events.ScriptPaused, "", s),
		ev(events.JobQueued, "<b>x</b>", s),
		ev(events.JobStart, "<b>x</b>", 2*s),
		{Type: events.JobEnd, Job: "<b>x</b>", Status: events.Failure, Time: at(3 * s)},
		ev(events.ScriptResumed, "", 3*s),
		ev(events.ScriptEnd, "", 4*s),
		ev(events.BuildEnd, "", 4*s),
	}
	svg := string(BuildTimeline(evs, at(time.Hour)).SVG())
	for _, want := range []string{
		`<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 1000 `,
		`<rect class="span paused" `,
		`<rect class="span running state-failure" `,
		`<rect class="span queued state-queued" `,
		`<title>script: paused 2.0s</title>`,
		`&lt;b&gt;x&lt;/b&gt;`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "<b>") || count(svg, "<g ") != count(svg, "</g>") || count(svg, "<rect") != count(svg, "</rect>")+1 {
		t.Errorf("bad SVG: %s", svg)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		20 * time.Millisecond:                     "20ms",
		1234 * time.Millisecond:                   "1.2s",
		3*time.Minute + 4*time.Second:             "3m04s",
		time.Hour + 2*time.Minute + 1*time.Second: "1h02m",
		-time.Second:                              "-1.0s",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func FuzzTimeline(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Triples of bytes: event type, job (0 for none), time in seconds,
		// in any order: the timeline must cope with events out of order.
		types := []events.Type{
			events.BuildStart, events.BuildEnd, events.ScriptStart, events.ScriptPaused,
			events.ScriptResumed, events.ScriptEnd, events.JobQueued, events.JobBlocked,
			events.JobUnblocked, events.JobStart, events.JobEnd, events.JobSkipped,
		}
		var evs []events.Event
		for i := 0; i+2 < len(b); i += 3 {
			e := events.Event{Type: types[int(b[i])%len(types)], Time: at(time.Duration(b[i+2]) * time.Second)}
			if b[i+1]%4 != 0 {
				e.Job = string(rune('a' + b[i+1]%4))
			}
			if e.Type == events.ScriptResumed {
				e.Duration = time.Duration(b[i+1]) * time.Second
			}
			evs = append(evs, e)
		}
		tl := BuildTimeline(evs, at(100*time.Second))
		if tl.End.Before(tl.Start) || tl.PausedShare < 0 || tl.PausedShare > 1 || tl.Paused > tl.ScriptTime {
			t.Fatalf("timeline %v..%v paused %v of %v", tl.Start, tl.End, tl.Paused, tl.ScriptTime)
		}
		for _, r := range tl.Rows {
			for _, s := range r.Spans {
				if s.Left < 0 || s.Width < MinSpanWidth || s.Left+s.Width > 100+1e-9 || s.End.Before(s.Start) {
					t.Fatalf("span %+v", s)
				}
			}
		}
		_ = tl.SVG()
	})
}

// A service's row says it is one, and its time from ready to its end is a
// span of its own: serving.
func TestTimelineService(t *testing.T) {
	s := time.Second
	evs := []events.Event{
		ev(events.BuildStart, "", 0),
		{Type: events.JobQueued, Job: "db", Expose: []int{5432}, Time: at(0)},
		ev(events.JobStart, "db", s),
		ev(events.JobReady, "db", 2*s),
		{Type: events.JobEnd, Job: "db", Status: events.Success, Time: at(5 * s)},
		ev(events.BuildEnd, "", 5*s),
	}
	tl := BuildTimeline(evs, at(time.Hour))
	db := tl.Rows[1]
	if db.Service != "5432" || db.State != StateSuccess {
		t.Errorf("row %+v", db)
	}
	starting, serving := spansOf(db, KindRunning), spansOf(db, KindServing)
	if len(starting) != 1 || !starting[0].End.Equal(at(2*s)) || starting[0].State != StateSuccess ||
		len(serving) != 1 || !serving[0].Start.Equal(at(2*s)) || !serving[0].End.Equal(at(5*s)) || serving[0].State != StateSuccess {
		t.Errorf("spans %+v", db.Spans)
	}
	svg := string(tl.SVG())
	for _, want := range []string{`<title>db: a service on port 5432</title>⇄ db`, `<rect class="span running serving state-success" `, `<title>db: serving 3.0s, success</title>`} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q:\n%s", want, svg)
		}
	}
}
