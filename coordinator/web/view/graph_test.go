package view

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func nodesByID(g Graph) map[string]Node {
	m := map[string]Node{}
	for _, n := range g.Nodes {
		m[n.ID] = n
	}
	return m
}

func TestLayoutDiamond(t *testing.T) {
	jobs := []JobNode{
		{ID: "build", State: StateSuccess},
		{ID: "test", Deps: []string{"build"}, State: StateRunning},
		{ID: "lint", Deps: []string{"build"}, State: StateFailure},
		{ID: "deploy", Deps: []string{"test", "lint"}, State: StateQueued},
	}
	g := LayoutGraph(jobs)
	n := nodesByID(g)
	for id, layer := range map[string]int{"build": 0, "test": 1, "lint": 1, "deploy": 2} {
		if n[id].Layer != layer {
			t.Errorf("%s in layer %d, want %d", id, n[id].Layer, layer)
		}
	}
	if len(g.Edges) != 4 {
		t.Fatalf("%d edges, want 4: %+v", len(g.Edges), g.Edges)
	}
	for _, e := range g.Edges {
		from, to := n[e.From], n[e.To]
		if from.X+from.W >= to.X {
			t.Errorf("edge %s -> %s goes right to left: %d >= %d", e.From, e.To, from.X+from.W, to.X)
		}
		if !strings.HasPrefix(e.Path, "M ") || !strings.Contains(e.Path, " C ") {
			t.Errorf("edge path %q is not a Bézier", e.Path)
		}
	}
	if n["test"].Y == n["lint"].Y {
		t.Errorf("test and lint overlap")
	}
	for _, nd := range g.Nodes {
		if nd.X < 0 || nd.Y < 0 || nd.X+nd.W > g.Width || nd.Y+nd.H > g.Height {
			t.Errorf("node %+v outside %dx%d", nd, g.Width, g.Height)
		}
	}
	// Deterministic.
	if again := LayoutGraph(jobs); !reflect.DeepEqual(g, again) {
		t.Errorf("two layouts differ")
	}
}

func TestLayoutLongestPath(t *testing.T) {
	// c depends on a directly and through b: it goes after b.
	g := LayoutGraph([]JobNode{{ID: "a"}, {ID: "b", Deps: []string{"a"}}, {ID: "c", Deps: []string{"a", "b"}}})
	if n := nodesByID(g); n["c"].Layer != 2 {
		t.Errorf("c in layer %d, want 2", n["c"].Layer)
	}
}

func TestLayoutReducesCrossings(t *testing.T) {
	// In first-seen order x (under b) would sit above y (under a): the
	// edges a-y and b-x would cross.
	g := LayoutGraph([]JobNode{{ID: "a"}, {ID: "b"}, {ID: "x", Deps: []string{"b"}}, {ID: "y", Deps: []string{"a"}}})
	n := nodesByID(g)
	if (n["a"].Y < n["b"].Y) != (n["y"].Y < n["x"].Y) {
		t.Errorf("edges cross: a=%d b=%d x=%d y=%d", n["a"].Y, n["b"].Y, n["x"].Y, n["y"].Y)
	}
}

func TestLayoutCycle(t *testing.T) {
	jobs := []JobNode{
		{ID: "a", Deps: []string{"c"}},
		{ID: "b", Deps: []string{"a"}},
		{ID: "c", Deps: []string{"b"}},
		{ID: "self", Deps: []string{"self"}},
		{ID: "d", Deps: []string{"a", "c"}},
	}
	done := make(chan Graph)
	go func() { done <- LayoutGraph(jobs) }()
	select {
	case g := <-done:
		if len(g.Nodes) != 5 {
			t.Errorf("%d nodes, want 5", len(g.Nodes))
		}
		n := nodesByID(g)
		// Walking from a (a needs c needs b needs a), b's need of a closes
		// the cycle and is dropped; so is the self loop.
		var got []string
		for _, e := range g.Edges {
			got = append(got, e.From+">"+e.To)
		}
		if want := []string{"c>a", "b>c", "a>d", "c>d"}; !reflect.DeepEqual(got, want) {
			t.Errorf("edges %v, want %v", got, want)
		}
		for _, e := range g.Edges {
			if n[e.From].Layer >= n[e.To].Layer {
				t.Errorf("edge %s -> %s does not go forward", e.From, e.To)
			}
		}
		_ = g.SVG()
	case <-time.After(5 * time.Second):
		t.Fatal("LayoutGraph hangs on a cycle")
	}
}

func TestLayoutMissingAndDuplicates(t *testing.T) {
	g := LayoutGraph([]JobNode{{ID: "a", Deps: []string{"ghost"}}, {ID: "b", Deps: []string{"a"}}, {ID: "a", State: StateFailure}})
	if len(g.Nodes) != 2 || len(g.Edges) != 1 {
		t.Fatalf("nodes %+v edges %+v", g.Nodes, g.Edges)
	}
	if n := nodesByID(g); !reflect.DeepEqual(n["a"].Missing, []string{"ghost"}) || n["a"].Layer != 0 {
		t.Errorf("a = %+v, want layer 0 missing ghost", n["a"])
	}
	if svg := string(g.SVG()); !strings.Contains(svg, "waits on unknown jobs: ghost") {
		t.Errorf("tooltip does not name the missing dependency: %s", svg)
	}
	if e := LayoutGraph(nil); len(e.Nodes) != 0 || e.Width <= 0 || e.Height <= 0 {
		t.Errorf("empty graph %+v", e)
	}
	_ = LayoutGraph(nil).SVG()
}

func TestGraphSVG(t *testing.T) {
	long := "a-very-long-job-name-that-does-not-fit"
	g := LayoutGraph([]JobNode{
		{ID: "<script>alert(1)</script>", State: StateSuccess},
		{ID: long, Deps: []string{"<script>alert(1)</script>"}, State: "bogus\" onclick=\"x"},
	})
	svg := string(g.SVG())
	for _, want := range []string{
		`<svg xmlns="http://www.w3.org/2000/svg" class="job-graph" viewBox="0 0 `,
		`<g class="node state-success" data-job="&lt;script&gt;alert(1)&lt;/script&gt;">`,
		`<g class="node state-unknown" data-job="` + long + `">`,
		`<title>` + long + ` (unknown)</title>`,
		`>a-very-long-job-na…</text>`,
		`<path class="edge" data-from="&lt;script&gt;`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q:\n%s", want, svg)
		}
	}
	if strings.Contains(svg, "<script") || strings.Contains(svg, "onclick=\"") {
		t.Errorf("SVG carries raw input: %s", svg)
	}
	if count(svg, `<path class="edge"`) != len(g.Edges) || count(svg, "<g ") != count(svg, "</g>") ||
		count(svg, "<g ") != len(g.Nodes) || count(svg, "<rect") != len(g.Nodes) || count(svg, "<text") != len(g.Nodes) {
		t.Errorf("unbalanced or miscounted SVG: %s", svg)
	}
	if !strings.HasSuffix(svg, "</svg>") {
		t.Errorf("SVG not closed")
	}

	linked := string(g.SVGLinked(func(id string) string { return "/jobs/" + id + "?x=1&y=2" }))
	if count(linked, "<a href=") != 2 || count(linked, "</a>") != 2 || !strings.Contains(linked, `?x=1&amp;y=2"`) {
		t.Errorf("SVGLinked: %s", linked)
	}
}

func FuzzLayout(f *testing.F) {
	f.Add([]byte{0, 1, 1, 2, 2, 0, 3, 3})
	f.Add([]byte{5, 4, 3, 2, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Pairs of bytes are edges between at most 16 jobs named a..p.
		name := func(c byte) string { return string(rune('a' + c%16)) }
		var jobs []JobNode
		seen := map[string]int{}
		for i := 0; i+1 < len(b); i += 2 {
			id := name(b[i])
			k, ok := seen[id]
			if !ok {
				k = len(jobs)
				seen[id] = k
				jobs = append(jobs, JobNode{ID: id, State: StateQueued})
			}
			jobs[k].Deps = append(jobs[k].Deps, name(b[i+1]))
		}
		g := LayoutGraph(jobs)
		if len(g.Nodes) != len(jobs) {
			t.Fatalf("%d nodes for %d jobs", len(g.Nodes), len(jobs))
		}
		n := nodesByID(g)
		for _, e := range g.Edges {
			if n[e.From].X+NodeW >= n[e.To].X {
				t.Fatalf("edge %s -> %s goes backwards", e.From, e.To)
			}
		}
		for i, a := range g.Nodes {
			for _, c := range g.Nodes[i+1:] {
				if a.X == c.X && a.Y == c.Y {
					t.Fatalf("%s and %s overlap", a.ID, c.ID)
				}
			}
		}
	})
}
