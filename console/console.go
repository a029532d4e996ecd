// Package console shows a running build to a person or a program: plain
// lines, a live status block on a terminal, or one JSON event per line.
package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
)

// scriptName is how the script container's output is prefixed.
const scriptName = "script"

// Printer is an agent.Reporter that writes to a terminal or a pipe. Safe for
// concurrent use.
type Printer struct {
	mu    sync.Mutex
	w     io.Writer
	json  bool
	live  *liveBlock // nil unless writing to a terminal
	jobs  map[string]*jobLine
	order []string
	// partial holds each stream's unfinished last line, so prefixes land
	// at line starts even when output arrives in pieces.
	partial map[string][]byte
	width   int // of the widest job id, for aligned prefixes
	now     func() time.Time
	// script is the script container's state while it runs ("" before and
	// after), since when, for the live block.
	script      string
	scriptSince time.Time
	// columns is the terminal's width; live rows are cut to it, since a
	// wrapped row would throw off the block's erasing. 0: no limit.
	columns int
}

// SetColumns tells a live printer the terminal's width.
func (p *Printer) SetColumns(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.columns = n
}

var _ agent.Reporter = (*Printer)(nil)

// Mode says how a Printer writes.
type Mode int

// Modes.
const (
	Plain Mode = iota // prefixed lines and a line per job state change
	Live              // a status block redrawn below the output (terminals)
	JSON              // one event per line, output as events too
)

// NewPrinter writes to w in the given mode.
func NewPrinter(w io.Writer, mode Mode) *Printer {
	p := &Printer{w: w, json: mode == JSON, jobs: map[string]*jobLine{}, partial: map[string][]byte{}, width: len(scriptName), now: time.Now}
	if mode == Live {
		p.live = &liveBlock{}
	}
	return p
}

type jobLine struct {
	id      string
	deps    []string // from job/queued
	action  bool     // from job/queued: run in the script's container
	ready   bool     // a service whose ports accept: its dependents go on
	state   string
	started time.Time
	took    time.Duration
	message string
}

// Event records e and shows what a person needs of it.
func (p *Printer) Event(e events.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		p.writeJSON(e)
		return
	}
	line := p.track(e)
	if line == "" {
		return
	}
	p.redraw(func(w io.Writer) {
		if p.live == nil {
			fmt.Fprintln(w, line)
		}
	})
}

// track updates the job table and returns the plain line for e, if any.
func (p *Printer) track(e events.Event) string {
	if e.Job == "" {
		switch e.Type {
		case events.ScriptStart:
			p.script, p.scriptSince = "running", e.Time
		case events.ScriptEnd:
			p.script = ""
		case events.ScriptPaused:
			p.script, p.scriptSince = "paused", e.Time
			return "script paused while its jobs run"
		case events.ScriptResumed:
			p.script, p.scriptSince = "running", e.Time
			return fmt.Sprintf("script resumed after %s", round(e.Duration))
		}
		return ""
	}
	j := p.job(e.Job)
	switch e.Type {
	case events.JobQueued:
		j.deps, j.action = e.Deps, e.Action
		if j.action {
			return "" // it runs at once: its job/start follows
		}
		j.state = p.queuedState(j)
	case events.JobInitializing:
		j.state = "creating"
	case events.JobStart:
		j.state, j.started = "running", e.Time
		if c := events.DescribeCaches(e.Caches); c != "" {
			return fmt.Sprintf("%-*s  %s; %s", p.width, e.Job, j.describe(time.Time{}), c)
		}
	case events.JobReady:
		ports := "port "
		if len(e.Expose) > 1 {
			ports = "ports "
		}
		j.state, j.ready = "serving on "+ports+pipeline.JoinPorts(e.Expose), true
		p.requeued()
	case events.JobEnd, events.JobSkipped:
		j.state, j.took, j.message = string(e.Status), e.Duration, e.Message
		p.requeued()
	default:
		return ""
	}
	return fmt.Sprintf("%-*s  %s", p.width, e.Job, j.describe(time.Time{}))
}

const waitingFor = "waiting for "

// requeued updates what the queued jobs wait for, after a job ended or a
// service became ready: the rest of their dependencies, or capacity.
func (p *Printer) requeued() {
	for _, q := range p.jobs {
		if strings.HasPrefix(q.state, waitingFor) {
			q.state = p.queuedState(q)
		}
	}
}

// queuedState says what a queued job waits for: the dependencies that have
// not ended, nor services that are ready (a job started with deps by a
// script), else capacity.
func (p *Printer) queuedState(j *jobLine) string {
	var waits []string
	for _, d := range j.deps {
		if dj, ok := p.jobs[d]; !ok || !dj.ready && !slices.Contains(endStates, dj.state) {
			waits = append(waits, d)
		}
	}
	if len(waits) > 0 {
		return waitingFor + strings.Join(waits, ", ")
	}
	return waitingFor + "capacity"
}

var endStates = []string{string(events.Success), string(events.Failure), string(events.Error), string(events.Canceled), string(events.Skipped)}

func (p *Printer) job(id string) *jobLine {
	j, ok := p.jobs[id]
	if !ok {
		j = &jobLine{id: id, state: "pending"}
		p.jobs[id] = j
		p.order = append(p.order, id)
		p.width = max(p.width, len(id))
	}
	return j
}

// describe says the job's state; a running job's time so far when now is set.
func (j *jobLine) describe(now time.Time) string {
	s := j.state
	switch {
	case j.state == "running" && !now.IsZero():
		s += " " + round(now.Sub(j.started))
	case j.took > 0:
		s += " in " + round(j.took)
	}
	if j.message != "" {
		s += ": " + j.message
	}
	if j.action {
		s = "action, " + s
	}
	return s
}

// Output writes a job's output, each line prefixed with the job's id.
func (p *Printer) Output(job, stream string, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	name := job
	if name == "" {
		name = scriptName
	}
	if p.json {
		p.writeJSON(map[string]string{"type": "output", "job": name, "stream": stream, "data": string(data)})
		return
	}
	key := name + "/" + stream
	buf := append(p.partial[key], data...)
	last := bytes.LastIndexByte(buf, '\n')
	if last < 0 {
		p.partial[key] = buf
		return
	}
	p.partial[key] = append([]byte(nil), buf[last+1:]...)
	p.redraw(func(w io.Writer) { p.writeLines(w, name, buf[:last+1]) })
}

func (p *Printer) writeLines(w io.Writer, name string, lines []byte) {
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n')
		fmt.Fprintf(w, "%-*s | %s\n", p.width, name, lines[:i])
		lines = lines[i+1:]
	}
}

// Flush writes what is left of unfinished lines.
func (p *Printer) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]string, 0, len(p.partial))
	for k := range p.partial {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if rest := p.partial[k]; len(rest) > 0 {
			name := k[:strings.LastIndexByte(k, '/')]
			p.redraw(func(w io.Writer) { p.writeLines(w, name, append(rest, '\n')) })
		}
		delete(p.partial, k)
	}
}

// Tick redraws the live block so running jobs' durations move.
func (p *Printer) Tick() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live != nil {
		p.redraw(func(io.Writer) {})
	}
}

// redraw writes output above the live block (or plainly).
func (p *Printer) redraw(write func(io.Writer)) {
	if p.live == nil {
		write(p.w)
		return
	}
	var buf bytes.Buffer
	p.live.erase(&buf)
	write(&buf)
	lines := make([]string, 0, len(p.order)+1)
	if p.script == "paused" {
		lines = append(lines, fmt.Sprintf(" ⏸ %-*s  paused %s, its CPU lent to jobs", p.width, scriptName, round(p.now().Sub(p.scriptSince))))
	}
	for _, id := range p.order {
		lines = append(lines, fmt.Sprintf(" %s %-*s  %s", symbol(p.jobs[id].state), p.width, id, p.jobs[id].describe(p.now())))
	}
	for i, l := range lines {
		lines[i] = cut(l, p.columns)
	}
	p.live.draw(&buf, lines)
	_, _ = p.w.Write(buf.Bytes())
}

// Summary writes how the build went: each job's result and time, and how
// long the script was paused.
func (p *Printer) Summary(out agent.Outcome) {
	p.Flush()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		p.writeJSON(map[string]any{"type": "summary", "result": out.Result, "duration": out.Duration, "paused": out.Paused, "pauses": out.Pauses, "jobs": out.Jobs})
		return
	}
	if p.live != nil {
		p.live.erase(p.w)
		p.live = nil
	}
	fmt.Fprintln(p.w)
	for _, j := range out.Jobs {
		took := ""
		if j.Duration > 0 {
			took = " in " + round(j.Duration)
		}
		msg := ""
		if j.Message != "" {
			msg = ": " + j.Message
		}
		fmt.Fprintf(p.w, "%s %-*s  %s%s%s\n", symbol(string(j.Result)), p.width, j.ID, j.Result, took, msg)
	}
	if out.Pauses == 0 {
		fmt.Fprintf(p.w, "build %s in %s; the script was not paused\n", out.Result, round(out.Duration))
		return
	}
	share := 0.0
	if out.Duration > 0 {
		share = 100 * float64(out.Paused) / float64(out.Duration)
	}
	fmt.Fprintf(p.w, "build %s in %s; script paused %s (%.0f%% of the build, %s)\n", out.Result, round(out.Duration), round(out.Paused), share, plural(out.Pauses, "pause"))
}

func (p *Printer) writeJSON(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	_, _ = p.w.Write(append(b, '\n'))
}

func symbol(state string) string {
	switch events.Result(state) {
	case events.Success:
		return "✔"
	case events.Failure, events.Error:
		return "✘"
	case events.Skipped, events.Canceled:
		return "-"
	}
	return "•"
}

// cut shortens s to n runes (no limit when n is 0).
func cut(s string, n int) string {
	if n <= 0 {
		return s
	}
	r := []rune(s)
	if len(r) < n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func round(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}
