package view

import (
	"regexp"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/events"
)

// Every look a node can take is explained: each state the graph draws has
// a swatch drawn with its own class, styled by GraphCSS, and the arrow is
// explained too.
func TestTheLegendExplainsEveryStateAndTheArrow(t *testing.T) {
	svg := string(GraphLegend())
	states := []string{StateQueued, StateRunning, StateSuccess, StateFailure, StateError, StateCanceled, StateSkipped, StateBlocked}
	for _, s := range states {
		if !strings.Contains(GraphCSS, ".state-"+s+" rect") {
			t.Fatalf("GraphCSS does not style %s", s)
		}
		// Canceled looks as skipped does: one swatch says both.
		shown := s
		if s == StateCanceled {
			shown = StateSkipped
			if !strings.Contains(svg, "canceled") {
				t.Errorf("the legend does not name canceled")
			}
		}
		if !strings.Contains(svg, `<g class="node state-`+shown+`" data-legend="`+shown+`"><rect`) {
			t.Errorf("the legend has no swatch for %s:\n%s", s, svg)
		}
	}
	// Every state class in the stylesheet is in the legend (a new state
	// needs a line there too); "unknown" is not a job's state.
	for _, m := range regexp.MustCompile(`\.state-([a-z]+) rect \{`).FindAllStringSubmatch(GraphCSS, -1) {
		if m[1] != "unknown" && m[1] != StateCanceled && !strings.Contains(svg, `data-legend="`+m[1]+`"`) {
			t.Errorf("GraphCSS styles state %s, which the legend does not show", m[1])
		}
	}
	if !strings.Contains(svg, `class="edge" data-legend="edge"`) || !strings.Contains(svg, "dependency → dependent") {
		t.Errorf("the legend does not explain the arrows:\n%s", svg)
	}
	if strings.Count(svg, "<svg") != 1 || !strings.HasSuffix(svg, "</svg>") {
		t.Errorf("the legend is not one svg element")
	}
}

// A job blocked before it is queued (a gate waits for a person before the
// script starts it) keeps its edges: job/blocked tells its dependencies.
func TestABlockedJobKeepsItsEdges(t *testing.T) {
	evs := []events.Event{
		{Type: events.JobQueued, Job: "build"},
		{Type: events.JobBlocked, Job: "gate", Deps: []string{"build"}},
		{Type: events.JobQueued, Job: "deploy", Deps: []string{"gate"}},
	}
	g := LayoutGraph(Jobs(evs))
	want := map[[2]string]bool{{"build", "gate"}: true, {"gate", "deploy"}: true}
	for _, e := range g.Edges {
		delete(want, [2]string{e.From, e.To})
	}
	if len(want) > 0 {
		t.Errorf("edges %v missing from %+v", want, g.Edges)
	}
	if n := nodesByID(g)["gate"]; n.State != StateBlocked || n.Layer != 1 {
		t.Errorf("gate = %+v, want blocked in layer 1", n)
	}
	// Unblocked and queued, it keeps them.
	evs = append(evs, events.Event{Type: events.JobUnblocked, Job: "gate"}, events.Event{Type: events.JobQueued, Job: "gate", Deps: []string{"build"}})
	if g := LayoutGraph(Jobs(evs)); len(g.Edges) != 2 {
		t.Errorf("after the unblock: edges %+v, want 2", g.Edges)
	}
}
