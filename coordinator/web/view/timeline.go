package view

import (
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
)

// Span kinds.
const (
	KindRunning = "running"
	KindPaused  = "paused"
	KindQueued  = "queued"
	// KindServing is a service's time from its ports accepting
	// connections to its end; before that it is KindRunning (starting).
	KindServing = "serving"
)

// Row kinds.
const (
	RowScript = "script"
	RowJob    = "job"
)

// statePaused is the State of the script container's paused spans.
const statePaused = "paused"

// MinSpanWidth is the narrowest a span is drawn, in percent of the
// timeline, so that a 20 ms pause in an hour-long build still shows.
const MinSpanWidth = 0.3

// Timeline is when the script container and each job queued, ran and (for
// the script) was paused, scaled to [Start, End].
type Timeline struct {
	Start, End time.Time
	Rows       []Row // the script container first, then jobs in first-seen order
	// Paused is how long the script container was paused in all; ScriptTime
	// its lifetime from script/start to script/end (or End); PausedShare is
	// Paused / ScriptTime, 0 when there is no script time.
	Paused      time.Duration
	ScriptTime  time.Duration
	PausedShare float64
}

// Row is one line of the timeline.
type Row struct {
	Label string
	Kind  string // RowScript or RowJob
	// State is where the job or script stands: a job state, or "paused"
	// for a paused script ("" before the script starts).
	State string
	Spans []Span
	// Service, for a service job, names the ports it serves ("8080").
	Service string
}

// Span is a stretch of time on a row.
type Span struct {
	Start, End time.Time
	Kind       string // KindRunning, KindServing, KindPaused or KindQueued
	// State is the outcome of a running span (a job state, "running" while
	// open), "queued" or "blocked" for a queued span, "paused" for a pause.
	State string
	// Left and Width place the span on the timeline, in percent of its
	// width; Width is at least MinSpanWidth.
	Left, Width float64
	Title       string
}

// rowBuilder collects a row's spans, at most one of them open.
type rowBuilder struct {
	row  Row
	open bool
}

func (r *rowBuilder) start(kind, state string, at time.Time) {
	r.stop(at, "")
	r.row.Spans = append(r.row.Spans, Span{Start: at, Kind: kind, State: state})
	r.open = true
}

// stop ends the open span, if any, at at, setting its state unless "".
func (r *rowBuilder) stop(at time.Time, state string) {
	if !r.open {
		return
	}
	s := &r.row.Spans[len(r.row.Spans)-1]
	s.End = at
	if state != "" {
		s.State = state
	}
	r.open = false
}

// end closes the row at its end event: a running span takes the result's
// state (a queued or paused one keeps its own), and so does the row.
func (r *rowBuilder) end(at time.Time, state string) {
	if k := r.current(); k == KindRunning || k == KindServing {
		r.stop(at, state)
	} else {
		r.stop(at, "")
	}
	r.row.State = state
}

// current is the open span's kind, "" when none is open.
func (r *rowBuilder) current() string {
	if !r.open {
		return ""
	}
	return r.row.Spans[len(r.row.Spans)-1].Kind
}

// BuildTimeline lays out evs (one attempt's) as a timeline. It ends at the
// build's end, or at now while the build runs; spans still open run to the
// end, as does a pause never resumed. Events without a time are ignored,
// and the timeline stretches to cover every event's time, so clock skew
// between the agent and now does not clip spans.
func BuildTimeline(evs []events.Event, now time.Time) Timeline {
	b := timelineBuilder{
		script: &rowBuilder{row: Row{Label: "script", Kind: RowScript}},
		byJob:  map[string]*rowBuilder{},
	}
	for i := range evs {
		b.add(&evs[i])
	}
	var t Timeline
	t.Start, t.End = b.extent(now)
	t.Rows = make([]Row, 0, 1+len(b.jobs))
	rows := append([]*rowBuilder{b.script}, b.jobs...)
	for _, r := range rows {
		t.Rows = append(t.Rows, r.placed(t.Start, t.End))
	}
	t.Paused, t.ScriptTime = scriptTimes(t.Rows[0])
	if t.ScriptTime > 0 {
		t.PausedShare = float64(t.Paused) / float64(t.ScriptTime)
	}
	return t
}

// timelineBuilder gathers an attempt's events into rows, and the times
// that bound the timeline.
type timelineBuilder struct {
	script *rowBuilder
	jobs   []*rowBuilder // in first-seen order
	byJob  map[string]*rowBuilder
	// first and last are the earliest and latest event times seen;
	// buildStart is the build's first start, buildEnd its end once ended.
	first, last, buildStart, buildEnd time.Time
	ended                             bool
}

// add takes one event into its row.
func (b *timelineBuilder) add(e *events.Event) {
	var r *rowBuilder
	if e.Job != "" {
		// Every job gets its row, even one whose events lack times.
		if r = b.byJob[e.Job]; r == nil {
			r = &rowBuilder{row: Row{Label: e.Job, Kind: RowJob, State: StateQueued}}
			b.byJob[e.Job] = r
			b.jobs = append(b.jobs, r)
		}
	}
	at := e.Time
	if at.IsZero() {
		return
	}
	if b.first.IsZero() || at.Before(b.first) {
		b.first = at
	}
	if at.After(b.last) {
		b.last = at
	}
	if r != nil {
		r.jobEvent(e, at)
		return
	}
	switch e.Type {
	case events.BuildStart:
		if b.buildStart.IsZero() {
			b.buildStart = at
		}
		b.ended = false
	case events.BuildEnd, events.BuildCanceled:
		b.ended, b.buildEnd = true, at
	default:
		b.script.scriptEvent(e, at)
	}
}

// extent is the timeline's start and end: from the build's start to its
// end (or now), widened to every event seen.
func (b *timelineBuilder) extent(now time.Time) (start, end time.Time) {
	start = b.buildStart
	if start.IsZero() || b.first.Before(start) {
		start = b.first
	}
	end = now
	if b.ended {
		end = b.buildEnd
	}
	if b.last.After(end) {
		end = b.last
	}
	if start.IsZero() {
		start = now
	}
	if end.Before(start) {
		end = start
	}
	return start, end
}

// scriptEvent moves the script container's row along.
func (r *rowBuilder) scriptEvent(e *events.Event, at time.Time) {
	switch e.Type {
	case events.ScriptInitializing:
		if r.current() == "" {
			r.start(KindQueued, StateQueued, at)
		}
	case events.ScriptStart:
		r.start(KindRunning, StateRunning, at)
		r.row.State = StateRunning
	case events.ScriptPaused:
		if r.current() != KindPaused {
			r.start(KindPaused, statePaused, at)
		}
		r.row.State = statePaused
	case events.ScriptResumed:
		if r.current() != KindPaused {
			// The pause was not seen: its length says when it began.
			if e.Duration <= 0 {
				return
			}
			r.start(KindPaused, statePaused, at.Add(-e.Duration))
		}
		r.start(KindRunning, StateRunning, at)
		r.row.State = StateRunning
	case events.ScriptEnd:
		r.end(at, endState(e))
	}
}

// jobEvent moves a job's row along.
func (r *rowBuilder) jobEvent(e *events.Event, at time.Time) {
	switch e.Type {
	case events.JobPending, events.JobQueued, events.JobInitializing:
		if len(e.Expose) > 0 {
			r.row.Service = pipeline.JoinPorts(e.Expose)
		}
		if r.current() != KindQueued {
			r.start(KindQueued, StateQueued, at)
		}
		r.row.State = StateQueued
	case events.JobBlocked:
		r.start(KindQueued, StateBlocked, at)
		r.row.State = StateBlocked
	case events.JobUnblocked:
		r.start(KindQueued, StateQueued, at)
		r.row.State = StateQueued
	case events.JobStart:
		r.start(KindRunning, StateRunning, at)
		r.row.State = StateRunning
	case events.JobReady:
		if r.current() == KindRunning {
			r.stop(at, StateSuccess) // it started: its ports accept
		}
		r.start(KindServing, StateRunning, at)
	case events.JobEnd:
		r.end(at, endState(e))
	case events.JobSkipped:
		r.stop(at, "")
		r.row.State = StateSkipped
	}
}

// placed closes the row at the timeline's end and places its spans on
// [start, end].
func (r *rowBuilder) placed(start, end time.Time) Row {
	r.stop(end, "")
	for i := range r.row.Spans {
		s := &r.row.Spans[i]
		if s.End.Before(s.Start) {
			s.End = s.Start
		}
		s.Left, s.Width = place(start, end, s.Start, s.End)
		s.Title = spanTitle(r.row.Label, *s)
	}
	return r.row
}

// scriptTimes sums the script row's paused time, and its lifetime: its
// running and paused spans.
func scriptTimes(script Row) (paused, lifetime time.Duration) {
	for _, s := range script.Spans {
		switch s.Kind {
		case KindPaused:
			paused += s.End.Sub(s.Start)
			lifetime += s.End.Sub(s.Start)
		case KindRunning:
			lifetime += s.End.Sub(s.Start)
		}
	}
	return paused, lifetime
}

// place returns the left and width, in percent of [start, end], of the
// span [from, to]: clamped to the timeline and at least MinSpanWidth wide.
func place(start, end, from, to time.Time) (left, width float64) {
	total := end.Sub(start)
	if total <= 0 {
		return 0, 100
	}
	pct := func(t time.Time) float64 {
		p := float64(t.Sub(start)) / float64(total) * 100
		return min(max(p, 0), 100)
	}
	left, right := pct(from), pct(to)
	width = max(right-left, MinSpanWidth)
	if left+width > 100 {
		left = 100 - width
	}
	return left, width
}

func spanTitle(label string, s Span) string {
	var b strings.Builder
	b.Grow(len(label) + 40)
	b.WriteString(label)
	b.WriteString(": ")
	b.WriteString(s.Kind)
	if s.Kind == KindQueued && s.State == StateBlocked {
		b.WriteString(" (blocked)")
	}
	b.WriteString(" ")
	b.WriteString(FormatDuration(s.End.Sub(s.Start)))
	if (s.Kind == KindRunning || s.Kind == KindServing) && s.State != StateRunning {
		b.WriteString(", ")
		b.WriteString(s.State)
	}
	return b.String()
}

// FormatDuration renders d for people: "20ms", "1.2s", "3m04s", "1h02m".
func FormatDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + FormatDuration(-d)
	case d == 0:
		return "0s"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		s := int64(d.Round(time.Second) / time.Second)
		return strconv.FormatInt(s/60, 10) + "m" + pad2(s%60) + "s"
	default:
		m := int64(d.Round(time.Minute) / time.Minute)
		return strconv.FormatInt(m/60, 10) + "h" + pad2(m%60) + "m"
	}
}

func pad2(n int64) string {
	if n < 10 {
		return "0" + strconv.FormatInt(n, 10)
	}
	return strconv.FormatInt(n, 10)
}

// Timeline SVG geometry, in user units; the SVG scales to its container.
const (
	tlWidth   = 1000
	tlLabelW  = 180 // the label column
	tlPlotW   = tlWidth - tlLabelW - 12
	tlAxisH   = 22
	tlRowH    = 24
	tlBarH    = 14
	tlLabelCh = 24 // label runes before "…"
)

// SVG draws the timeline: an axis of elapsed time, then a row per Row with
// its label and a rect per span, each with a <title> tooltip. Colours and
// the pause hatching come from TimelineCSS.
func (t Timeline) SVG() template.HTML {
	h := tlAxisH + len(t.Rows)*tlRowH + 4
	var w svgBuf
	w.b = make([]byte, 0, 1024+256*len(t.Rows))
	w.s(`<svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox="0 0 `).i(tlWidth).s(" ").i(h).
		s(`" width="100%" role="img" aria-label="Build timeline">`)
	w.s(`<defs><pattern id="timeline-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
		`<rect class="hatch-bg" width="6" height="6"/><line class="hatch" x1="0" y1="0" x2="0" y2="6"/></pattern></defs>`)

	total := t.End.Sub(t.Start)
	step := tickStep(total)
	for k := 0; step > 0 && time.Duration(k)*step <= total; k++ {
		x := tlLabelW + float64(time.Duration(k)*step)/float64(total)*tlPlotW
		w.s(`<line class="tick" x1="`).f(x).s(`" y1="`).i(tlAxisH - 4).s(`" x2="`).f(x).s(`" y2="`).i(h).s(`"/>`)
		w.s(`<text class="tick-label" x="`).f(x).s(`" y="`).i(tlAxisH - 8).s(`" text-anchor="middle">`).
			s(FormatDuration(time.Duration(k) * step)).s(`</text>`)
	}

	for i, r := range t.Rows {
		y := tlAxisH + i*tlRowH
		kind := RowJob
		if r.Kind == RowScript {
			kind = RowScript
		}
		w.s(`<g class="row `).s(kind).s(`">`)
		label, title := r.Label, r.Label
		if r.Service != "" {
			label, title = "⇄ "+r.Label, r.Label+": a service on port "+r.Service
		}
		w.s(`<text class="label state-`).s(stateClass(r.State)).s(`" x="4" y="`).i(y + tlRowH/2).
			s(`" dominant-baseline="central"><title>`).t(title).s(`</title>`).t(ellipsis(label, tlLabelCh)).s(`</text>`)
		for _, sp := range r.Spans {
			w.s(`<rect class="span `)
			switch sp.Kind {
			case KindPaused:
				w.s("paused")
			case KindQueued:
				w.s("queued state-").s(stateClass(sp.State))
			case KindServing:
				w.s("running serving state-").s(stateClass(sp.State))
			default:
				w.s("running state-").s(stateClass(sp.State))
			}
			w.s(`" x="`).f(tlLabelW + sp.Left/100*tlPlotW).s(`" y="`).i(y + (tlRowH-tlBarH)/2).
				s(`" width="`).f(sp.Width / 100 * tlPlotW).s(`" height="`).i(tlBarH).
				s(`" rx="2"><title>`).t(sp.Title).s(`</title></rect>`)
		}
		w.s(`</g>`)
	}
	w.s(`</svg>`)
	return w.html()
}

// tickStep picks a round interval giving at most about six ticks.
func tickStep(total time.Duration) time.Duration {
	if total <= 0 {
		return 0
	}
	for _, s := range []time.Duration{
		time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
		10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
		100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
	} {
		if total/s <= 6 {
			return s
		}
	}
	return total / 6
}

// TimelineCSS styles Timeline.SVG; pages embed it in their stylesheet.
const TimelineCSS = `
.timeline { font: 12px system-ui, sans-serif; display: block; }
.timeline .tick { stroke: #eaeef2; stroke-width: 1; }
.timeline .tick-label { fill: #6e7781; font-size: 11px; }
.timeline .label { fill: #1f2328; }
.timeline .row.script .label { font-weight: 600; }
.timeline .span.queued { fill: #d0d7de; }
.timeline .span.queued.state-blocked { fill: #c297ff; }
.timeline .span.running.state-running { fill: #0969da; }
.timeline .span.running.state-success { fill: #1a7f37; }
.timeline .span.running.state-failure { fill: #cf222e; }
.timeline .span.running.state-error { fill: #d1560c; }
.timeline .span.running.state-canceled, .timeline .span.running.state-skipped, .timeline .span.running.state-unknown { fill: #afb8c1; }
.timeline .span.serving { fill-opacity: 0.55; }
.timeline .span.paused { fill: url(#timeline-hatch); stroke: #9a6700; stroke-width: 1; }
.timeline .hatch-bg { fill: #fff8c5; }
.timeline .hatch { stroke: #9a6700; stroke-width: 2; }
`
