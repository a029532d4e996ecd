package web

import (
	"context"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Limits of the builds list: how many it shows unless asked, and at most.
const (
	defaultLimit = 200
	maxLimit     = 5000
)

// listGap is the least time between two updates of a builds list: at
// thousands of builds a second, a browser gets two a second.
const listGap = 500 * time.Millisecond

// filter is what the builds list shows, from its query.
type filter struct {
	Repo   string
	Branch string
	State  string
	Limit  int
}

// states are the states a list may be filtered by.
var states = []string{string(coordinator.Queued), string(coordinator.Running), string(coordinator.Ended)}

// limits are those the list's form offers.
var limits = []int{50, defaultLimit, 1000, maxLimit}

func parseFilter(r *http.Request) filter {
	q := r.URL.Query()
	f := filter{Repo: q.Get("repo"), Branch: q.Get("branch"), Limit: defaultLimit}
	if st := q.Get("state"); slices.Contains(states, st) {
		f.State = st
	}
	if n, err := strconv.Atoi(q.Get("limit")); err == nil && n > 0 {
		f.Limit = min(n, maxLimit)
	}
	return f
}

// buildRow is one line of the builds list, ready to print.
type buildRow struct {
	ID, Repo, Branch, Commit, Trigger string
	// Status is the state, or the result of an ended build.
	Status   string
	Attempt  int
	Agent    string
	Duration string
	// Since is when a running build started (unix ms), for the page's
	// script to count its duration on; 0 when not running.
	Since   int64
	Waiting string
	Created time.Time
}

type buildsData struct {
	Session session
	Filter  filter
	States  []string
	Limits  []int
	Repos   []string
	Rows    []buildRow
}

// Count says how many builds are listed ("1 build", "3 builds").
func (d buildsData) Count() string { return rowCount(len(d.Rows)) }

// RowsHTML is the list's table body.
func (d buildsData) RowsHTML() template.HTML { return rowsHTML(d.Rows) }

func (s *Server) buildsPage(w http.ResponseWriter, r *http.Request, ss session) {
	f := parseFilter(r)
	rows, err := s.rows(r.Context(), f)
	if err != nil {
		s.log.Error("listing builds", "error", err)
		s.errorPage(w, http.StatusInternalServerError, ss, "The builds could not be read.")
		return
	}
	d := buildsData{Session: ss, Filter: f, States: states, Limits: limits, Rows: rows}
	if repos, err := s.admin.ListRepos(r.Context(), &fleet.ListReposRequest{}); err == nil {
		for _, rp := range repos.GetRepos() {
			d.Repos = append(d.Repos, rp.GetName())
		}
	}
	s.render(w, http.StatusOK, "builds", d)
}

// buildsEvents streams the list's rows as they change.
func (s *Server) buildsEvents(w http.ResponseWriter, r *http.Request, _ session) {
	f := parseFilter(r)
	s.serve(w, r, watch{gap: listGap, changes: s.c.BuildChanges, render: func(ctx context.Context) (map[string]string, error) {
		rows, err := s.rows(ctx, f)
		if err != nil {
			return nil, err
		}
		return map[string]string{"builds-rows": string(rowsHTML(rows)), "builds-count": rowCount(len(rows))}, nil
	}})
}

// rowsHTML writes the list's rows. By hand rather than with a template:
// at 1,000 rows html/template's escaping (a reflective call per value)
// takes some 20 ms, this well under one.
func rowsHTML(rows []buildRow) template.HTML {
	if len(rows) == 0 {
		return `<tr><td colspan="10" class="empty">No builds.</td></tr>` + "\n"
	}
	var b strings.Builder
	b.Grow(len(rows) * 512)
	cell := func(class, text string) {
		b.WriteString("<td")
		if class != "" {
			b.WriteString(` class="` + class + `"`)
		}
		b.WriteString(">" + html.EscapeString(text) + "</td>")
	}
	for _, r := range rows {
		id := html.EscapeString(url.PathEscape(r.ID))
		b.WriteString(`<tr><td class="mono"><a href="/builds/` + id + `">` + html.EscapeString(r.ID) + `</a></td>`)
		b.WriteString(`<td><a href="/builds?repo=` + html.EscapeString(url.QueryEscape(r.Repo)) + `">` + html.EscapeString(r.Repo) + `</a></td>`)
		cell("", r.Branch)
		cell("mono", short(r.Commit))
		cell("", r.Trigger)
		st := html.EscapeString(r.Status)
		b.WriteString(`<td><span class="status status-` + st + `">` + st + `</span>`)
		if r.Waiting != "" {
			b.WriteString(` <span class="waiting" title="` + html.EscapeString(r.Waiting) + `">?</span>`)
		}
		b.WriteString("</td>")
		cell("", strconv.Itoa(r.Attempt))
		cell("", r.Agent)
		if r.Since != 0 {
			b.WriteString(`<td data-since="` + strconv.FormatInt(r.Since, 10) + `">` + html.EscapeString(r.Duration) + "</td>")
		} else {
			cell("", r.Duration)
		}
		cell("when", when(r.Created))
		b.WriteString("</tr>\n")
	}
	return template.HTML(b.String())
}

func rowCount(n int) string {
	if n == 1 {
		return "1 build"
	}
	return fmt.Sprintf("%d builds", n)
}

// rows reads the list in two queries (the builds, the agents' names),
// however long it is.
func (s *Server) rows(ctx context.Context, f filter) ([]buildRow, error) {
	builds, err := s.c.Builds(ctx, coordinator.BuildFilter{Repo: f.Repo, Branch: f.Branch, State: coordinator.State(f.State), Limit: f.Limit})
	if err != nil {
		return nil, err
	}
	names, err := s.agentNames(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	rows := make([]buildRow, len(builds))
	for i, b := range builds {
		row := buildRow{
			ID: b.ID, Repo: b.Repo, Branch: b.Source.Branch, Commit: b.Source.Commit, Trigger: b.Trigger,
			Status: buildStatus(b), Attempt: b.Attempt, Agent: names[b.Agent], Waiting: b.Waiting, Created: b.Created,
		}
		if row.Agent == "" {
			row.Agent = b.Agent
		}
		switch b.State {
		case coordinator.Running:
			row.Duration, row.Since = duration(now.Sub(b.Started)), b.Started.UnixMilli()
		case coordinator.Ended:
			row.Duration = duration(b.Ended.Sub(startOf(b)))
		}
		rows[i] = row
	}
	return rows, nil
}

// agentNames maps agent ids to names.
func (s *Server) agentNames(ctx context.Context) (map[string]string, error) {
	agents, err := s.c.Agents(ctx)
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(agents))
	for _, a := range agents {
		names[a.ID] = a.Name
	}
	return names, nil
}

// buildStatus is what a build's state says to people: its result once ended.
func buildStatus(b coordinator.Build) string {
	if b.State == coordinator.Ended && b.Result != "" {
		return string(b.Result)
	}
	return string(b.State)
}

// startOf is when a build's last attempt started, or its creation when it
// never did.
func startOf(b coordinator.Build) time.Time {
	if b.Started.IsZero() {
		return b.Created
	}
	return b.Started
}
