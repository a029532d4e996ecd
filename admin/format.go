package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Output formats.
const (
	FormatTable = "table"
	FormatJSON  = "json"
)

// CheckFormat refuses an -o that is neither table nor json.
func CheckFormat(f string) error {
	if f != FormatTable && f != FormatJSON {
		return fmt.Errorf("-o %q: say table or json", f)
	}
	return nil
}

// none stands for an empty cell, so that columns stay countable.
const none = "-"

func cell(s string) string {
	if s == "" {
		return none
	}
	return s
}

// table aligns tab-separated cells in columns, without trailing blanks.
type table struct {
	w   io.Writer
	buf bytes.Buffer
	tw  *tabwriter.Writer
}

func newTable(w io.Writer) *table {
	t := &table{w: w}
	t.tw = tabwriter.NewWriter(&t.buf, 0, 0, 2, ' ', 0)
	return t
}

func (t *table) Write(p []byte) (int, error) { return t.tw.Write(p) }

// Flush writes the table.
func (t *table) Flush() error {
	if err := t.tw.Flush(); err != nil {
		return err
	}
	lines := bytes.SplitAfter(t.buf.Bytes(), []byte("\n"))
	var out bytes.Buffer
	for _, l := range lines {
		trimmed := bytes.TrimRight(l, " \n")
		out.Write(trimmed)
		if len(trimmed) < len(l) && l[len(l)-1] == '\n' {
			out.WriteByte('\n')
		}
	}
	t.buf.Reset()
	_, err := t.w.Write(out.Bytes())
	return err
}

func row(tw io.Writer, cells ...string) {
	for i, c := range cells {
		// a tab or newline in a value would break the table's columns
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(c)
	}
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

// each is f of every x, for -o json: empty, never nil, when xs is.
func each[X, J any](xs []X, f func(X) J) []J {
	out := make([]J, 0, len(xs))
	for _, x := range xs {
		out = append(out, f(x))
	}
	return out
}

// WriteJSON writes v as indented JSON and a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// AgentJSON is an agent in -o json.
type AgentJSON struct {
	ID            string            `json:"id"`
	Name          string            `json:"name"`
	State         string            `json:"state"`
	Labels        map[string]string `json:"labels"`
	MilliCPUs     int64             `json:"milli_cpus"`
	Memory        int64             `json:"memory"`
	FreeMilliCPUs int64             `json:"free_milli_cpus"`
	FreeMemory    int64             `json:"free_memory"`
	Builds        []string          `json:"builds"`
	Version       string            `json:"version"`
	LastSeen      *time.Time        `json:"last_seen"`
}

// Agent is a in -o json.
func Agent(a *fleet.AgentInfo) AgentJSON {
	j := AgentJSON{
		ID: a.GetId(), Name: a.GetName(), State: a.GetState(), Labels: a.GetLabels(),
		MilliCPUs: a.GetMilliCpus(), Memory: a.GetMemory(), FreeMilliCPUs: a.GetFreeMilliCpus(), FreeMemory: a.GetFreeMemory(),
		Builds: a.GetBuilds(), Version: a.GetVersion(), LastSeen: TimeOf(a.GetLastSeen()),
	}
	if j.Labels == nil {
		j.Labels = map[string]string{}
	}
	if j.Builds == nil {
		j.Builds = []string{}
	}
	return j
}

// Agents are agents in -o json.
func Agents(as []*fleet.AgentInfo) []AgentJSON { return each(as, Agent) }

// AgentsTable writes agents as a table: ID NAME STATE CPUS MEMORY FREE
// BUILDS LABELS. FREE is free CPUs/free memory.
func AgentsTable(w io.Writer, as []*fleet.AgentInfo) error {
	tw := newTable(w)
	row(tw, "ID", "NAME", "STATE", "CPUS", "MEMORY", "FREE", "BUILDS", "LABELS")
	for _, a := range as {
		cpus, mem, free := none, none, none
		if a.GetMilliCpus() > 0 || a.GetMemory() > 0 {
			cpus, mem = CPUs(a.GetMilliCpus()), Bytes(a.GetMemory())
			free = CPUs(a.GetFreeMilliCpus()) + "/" + Bytes(a.GetFreeMemory())
		}
		row(tw, a.GetId(), cell(a.GetName()), cell(a.GetState()), cpus, mem, free, strconv.Itoa(len(a.GetBuilds())), Labels(a.GetLabels()))
	}
	return tw.Flush()
}

// Labels writes labels as k=v,k=v in key order ("-" when there are none).
func Labels(l map[string]string) string {
	if len(l) == 0 {
		return none
	}
	parts := make([]string, 0, len(l))
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}

// CPUs writes millicpus as CPUs: 2, 1.5, 0.25.
func CPUs(milli int64) string {
	return strconv.FormatFloat(math.Round(float64(milli)/10)/100, 'f', -1, 64)
}

// Bytes writes a size without spaces: 8GB, 512MB, 1.5KB, 12B.
func Bytes(n int64) string {
	f := float64(n)
	for _, u := range []struct {
		size float64
		name string
	}{{1 << 40, "TB"}, {1 << 30, "GB"}, {1 << 20, "MB"}, {1 << 10, "KB"}} {
		if f >= u.size {
			return strconv.FormatFloat(math.Round(f/u.size*10)/10, 'f', -1, 64) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// BuildJSON is a build in -o json. Times are RFC 3339; null when the build
// has not got there.
type BuildJSON struct {
	ID      string `json:"id"`
	Repo    string `json:"repo"`
	URL     string `json:"url"`
	Branch  string `json:"branch"`
	Commit  string `json:"commit"`
	State   string `json:"state"`
	Result  string `json:"result"`
	Message string `json:"message"`
	Attempt int32  `json:"attempt"`
	// AttemptReasons says why each attempt after the first exists.
	AttemptReasons map[int32]string `json:"attempt_reasons,omitempty"`
	Agent          string           `json:"agent"`
	Waiting        string           `json:"waiting"`
	Created        *time.Time       `json:"created"`
	Started        *time.Time       `json:"started"`
	Ended          *time.Time       `json:"ended"`
	// PullRequest is the pull request's number, 0 none; the cache scope
	// is where its caches are written, the fallback what it reads too.
	PullRequest   int32  `json:"pull_request"`
	CacheScope    string `json:"cache_scope"`
	CacheFallback string `json:"cache_fallback"`
	Priority      string `json:"priority"`
}

// Build is b in -o json.
func Build(b *fleet.BuildInfo) BuildJSON {
	return BuildJSON{
		ID: b.GetId(), Repo: b.GetRepo(), URL: b.GetUrl(), Branch: b.GetBranch(), Commit: b.GetCommit(),
		State: b.GetState(), Result: b.GetResult(), Message: b.GetMessage(), Attempt: b.GetAttempt(),
		AttemptReasons: b.GetAttemptReasons(), Agent: b.GetAgent(), Waiting: b.GetWaiting(),
		Created: TimeOf(b.GetCreated()), Started: TimeOf(b.GetStarted()), Ended: TimeOf(b.GetEnded()),
		PullRequest: b.GetPullRequest(), CacheScope: b.GetCacheScope(), CacheFallback: b.GetCacheFallback(), Priority: b.GetPriority(),
	}
}

// Builds are builds in -o json.
func Builds(bs []*fleet.BuildInfo) []BuildJSON { return each(bs, Build) }

// EventJSON is a stored event in -o json; event is the event's own JSON
// (package events).
type EventJSON struct {
	Attempt int32           `json:"attempt"`
	Seq     int64           `json:"seq"`
	Event   json.RawMessage `json:"event"`
}

// BuildDetailJSON is `builds show -o json`: the build's fields and its
// events.
type BuildDetailJSON struct {
	BuildJSON
	Events []EventJSON `json:"events"`
}

// Detail is d in -o json.
func Detail(d *fleet.BuildDetail) BuildDetailJSON {
	out := BuildDetailJSON{BuildJSON: Build(d.GetBuild()), Events: []EventJSON{}}
	for _, e := range d.GetEvents() {
		raw := json.RawMessage(e.GetEvent())
		if !json.Valid(raw) {
			raw, _ = json.Marshal(string(e.GetEvent()))
		}
		out.Events = append(out.Events, EventJSON{Attempt: e.GetAttempt(), Seq: e.GetSeq(), Event: raw})
	}
	return out
}

// TimeOf is ts as a *time.Time, nil for none (JSON null).
func TimeOf(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	return &t
}

// stamp is when ts was, in local time, and how long ago as of now ("-"
// for none).
func stamp(ts *timestamppb.Timestamp, now time.Time) string {
	t := TimeOf(ts)
	if t == nil {
		return none
	}
	return t.Local().Format("2006-01-02 15:04:05 MST") + " (" + Age(now.Sub(*t)) + " ago)"
}

// ShortCommit is the first 12 characters of a commit id.
func ShortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// BuildsTable writes builds as a table: ID REPO BRANCH COMMIT STATE RESULT
// ATTEMPT AGENT AGE DURATION, with ages and durations as of now.
func BuildsTable(w io.Writer, bs []*fleet.BuildInfo, now time.Time) error {
	tw := newTable(w)
	row(tw, "ID", "REPO", "BRANCH", "COMMIT", "STATE", "RESULT", "ATTEMPT", "AGENT", "AGE", "DURATION")
	for _, b := range bs {
		age := none
		if c := TimeOf(b.GetCreated()); c != nil {
			age = Age(now.Sub(*c))
		}
		row(tw, b.GetId(), cell(b.GetRepo()), cell(b.GetBranch()), cell(ShortCommit(b.GetCommit())),
			cell(b.GetState()), cell(b.GetResult()), strconv.Itoa(int(b.GetAttempt())), cell(b.GetAgent()),
			age, BuildDuration(b, now))
	}
	return tw.Flush()
}

// Age is how long ago, coarsely: 45s, 12m, 5h, 3d.
func Age(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

// Duration is a run time: 350ms, 4.2s, 1m23s.
func Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// BuildDuration is how long the build ran: until it ended, or until now
// while it runs; "-" before it started.
func BuildDuration(b *fleet.BuildInfo, now time.Time) string {
	start := TimeOf(b.GetStarted())
	if start == nil {
		return none
	}
	end := now
	if e := TimeOf(b.GetEnded()); e != nil {
		end = *e
	}
	return Duration(end.Sub(*start))
}

// DetailText writes `builds show`: the build's fields, one per line, then
// its events as lines: time type job status message.
func DetailText(w io.Writer, d *fleet.BuildDetail, now time.Time) error {
	b := d.GetBuild()
	tw := newTable(w)
	for _, f := range [][2]string{
		{"id", b.GetId()},
		{"repo", b.GetRepo()},
		{"url", b.GetUrl()},
		{"branch", b.GetBranch()},
		{"commit", b.GetCommit()},
		{"state", b.GetState()},
		{"result", b.GetResult()},
		{"attempt", strconv.Itoa(int(b.GetAttempt()))},
		{"agent", b.GetAgent()},
		{"created", stamp(b.GetCreated(), now)},
		{"started", stamp(b.GetStarted(), now)},
		{"ended", stamp(b.GetEnded(), now)},
		{"duration", BuildDuration(b, now)},
		{"waiting", b.GetWaiting()},
		{"message", b.GetMessage()},
	} {
		row(tw, f[0]+":", cell(f[1]))
	}
	// Only when known: builds of no pull request, or from before scopes.
	if n := b.GetPullRequest(); n > 0 {
		row(tw, "pr:", "#"+strconv.Itoa(int(n)))
	}
	if s := cacheScope(b); s != "" {
		row(tw, "caches:", s)
	}
	// Only when not the usual one.
	if p := b.GetPriority(); p != "" && p != "normal" {
		row(tw, "priority:", p)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if why := AttemptReasons(b); len(why) > 0 {
		fmt.Fprintln(w)
		for _, a := range why {
			fmt.Fprintf(w, "attempt %d: %s\n", a.Attempt, a.Reason)
		}
	}
	fmt.Fprintln(w)
	if len(d.GetEvents()) == 0 {
		_, err := fmt.Fprintln(w, "events: none")
		return err
	}
	fmt.Fprintln(w, "events:")
	attempts := map[int32]bool{}
	for _, e := range d.GetEvents() {
		attempts[e.GetAttempt()] = true
	}
	// events of more than one attempt say which
	many := len(attempts) > 1
	tw = newTable(w)
	header := []string{"TIME", "TYPE", "JOB", "STATUS", "MESSAGE"}
	if many {
		header = append([]string{"ATTEMPT"}, header...)
	}
	row(tw, header...)
	for _, e := range d.GetEvents() {
		cells := EventCells(e.GetEvent())
		if many {
			cells = append([]string{strconv.Itoa(int(e.GetAttempt()))}, cells...)
		}
		row(tw, cells...)
	}
	return tw.Flush()
}

// AttemptReason is why one attempt after the first exists.
type AttemptReason struct {
	Attempt int32
	Reason  string
}

// AttemptReasons lists why b's attempts after the first exist, in order
// of attempt, up to its current one.
func AttemptReasons(b *fleet.BuildInfo) []AttemptReason {
	var out []AttemptReason
	for n, why := range b.GetAttemptReasons() {
		if n <= b.GetAttempt() || b.GetState() == "queued" { // a canceled build's next one never ran
			out = append(out, AttemptReason{n, why})
		}
	}
	slices.SortFunc(out, func(a, b AttemptReason) int { return int(a.Attempt - b.Attempt) })
	return out
}

// cacheScope is the scope a build's caches are written to, and the one
// read for a cache it lacks.
func cacheScope(b *fleet.BuildInfo) string {
	s := b.GetCacheScope()
	if f := b.GetCacheFallback(); s != "" && f != "" {
		s += " (reads " + f + " for a cache it has not yet)"
	}
	return s
}

// EventCells are an event's time, type, job, status and message; an event
// that is not JSON is shown as is.
func EventCells(body []byte) []string {
	var e events.Event
	if err := json.Unmarshal(body, &e); err != nil {
		return []string{none, "?", none, none, string(body)}
	}
	at := none
	if !e.Time.IsZero() {
		at = e.Time.Local().Format("15:04:05.000")
	}
	msg := e.Message
	if c := events.DescribeCaches(e.Caches); c != "" {
		msg = strings.TrimSpace(msg + " " + c)
	}
	if e.Exit != nil && *e.Exit != 0 {
		msg = strings.TrimSpace(msg + fmt.Sprintf(" (exit %d)", *e.Exit))
	}
	status := string(e.Status)
	if e.Duration > 0 && status != "" {
		status += " in " + Duration(e.Duration)
	}
	return []string{at, cell(string(e.Type)), cell(e.Job), cell(status), msg}
}

// ResultLine is the line that ends `trigger --wait`: how the build ended.
func ResultLine(b *fleet.BuildInfo) string {
	line := fmt.Sprintf("build %s %s", b.GetId(), cell(b.GetResult()))
	if d := BuildDuration(b, time.Now()); d != none {
		line += " in " + d
	}
	if m := b.GetMessage(); m != "" {
		line += ": " + m
	}
	return line
}
