package view

import (
	"cmp"
	"html/template"
	"slices"
	"strings"
	"unicode/utf8"
)

// Graph geometry, in SVG user units.
const (
	NodeW  = 160
	NodeH  = 36
	colGap = 64 // between layers, room for the edges' curves
	rowGap = 16 // between nodes of a layer
	margin = 16
	// labelRunes is how much of a job id fits in a node before "…".
	labelRunes = 19
)

// Graph is a laid out job graph.
type Graph struct {
	Width, Height int
	Nodes         []Node // in the order of the jobs given
	Edges         []Edge // dependency to dependent
}

// Node is a job's box.
type Node struct {
	ID, State  string
	X, Y, W, H int
	// Layer is the node's column: 0 for jobs without dependencies, else one
	// more than its deepest dependency.
	Layer int
	// Missing are dependencies on jobs that are not in the graph. They are
	// not drawn as edges, only named in the node's tooltip.
	Missing []string
}

// Edge joins a dependency (From) to its dependent (To).
type Edge struct {
	From, To string
	// Path is an SVG path "d": a cubic Bézier from the right middle of From
	// to the left middle of To.
	Path string
}

// LayoutGraph lays jobs out left to right in layers by longest path from
// the roots, and orders each layer with a few barycenter sweeps to cut
// edge crossings. It is deterministic: the same jobs give the same graph.
//
// A dependency cycle (which the agent never produces) is broken by dropping
// the edge that closes it, the first found walking the jobs in order; that
// edge is not drawn. Duplicate job ids keep their first node.
func LayoutGraph(jobs []JobNode) Graph {
	l := newGraphLayout(jobs)
	l.assignColumns()
	l.reduceCrossings()
	return l.graph()
}

// pitch is the distance between the tops of a column's nodes.
const pitch = NodeH + rowGap

// graphLayout is LayoutGraph's work, by node: node i is jobs[i], and only
// the first node of a job id is laid out (live).
type graphLayout struct {
	jobs  []JobNode
	index map[string]int // a job id's first node
	// preds[i] are the known dependencies of node i (less those closing a
	// cycle, once the columns are assigned); missing[i] the others.
	preds   [][]int
	missing [][]string
	layer   []int
	cols    [][]int // the nodes of each layer, top to bottom
	pos     []int   // a node's row in its column
	tallest int     // the most nodes a column has
	bary    []float64
}

func newGraphLayout(jobs []JobNode) *graphLayout {
	n := len(jobs)
	l := &graphLayout{jobs: jobs, index: make(map[string]int, n), preds: make([][]int, n), missing: make([][]string, n)}
	for i, j := range jobs {
		if _, dup := l.index[j.ID]; !dup {
			l.index[j.ID] = i
		}
	}
	for i, j := range jobs {
		if !l.live(i) {
			continue
		}
		for _, d := range cleanDeps(j.Deps) {
			if p, ok := l.index[d]; ok {
				l.preds[i] = append(l.preds[i], p)
			} else {
				l.missing[i] = append(l.missing[i], d)
			}
		}
	}
	return l
}

// live says node i is laid out: it is its job id's first.
func (l *graphLayout) live(i int) bool { return l.index[l.jobs[i].ID] == i }

// assignColumns puts each node in the column of its layer, in first-seen
// order to begin with.
func (l *graphLayout) assignColumns() {
	l.layer, l.preds = assignLayers(l.preds, l.live)
	nLayers := 0
	for i := range l.jobs {
		if l.live(i) {
			nLayers = max(nLayers, l.layer[i]+1)
		}
	}
	l.cols = make([][]int, nLayers)
	for i := range l.jobs {
		if l.live(i) {
			l.cols[l.layer[i]] = append(l.cols[l.layer[i]], i)
		}
	}
	for _, c := range l.cols {
		l.tallest = max(l.tallest, len(c))
	}
	l.pos = make([]int, len(l.jobs))
	for _, c := range l.cols {
		l.placeColumn(c)
	}
}

// y is a node's top below the margin: shorter columns are centred on the
// tallest. Barycenters compare tops, all nodes being as tall.
func (l *graphLayout) y(i int) float64 {
	c := len(l.cols[l.layer[i]])
	return float64((l.tallest-c)*pitch)/2 + float64(l.pos[i]*pitch)
}

// placeColumn gives each node of column c its row, in c's order.
func (l *graphLayout) placeColumn(c []int) {
	for k, i := range c {
		l.pos[i] = k
	}
}

// reduceCrossings runs barycenter sweeps: it sorts each column by the mean
// height of its neighbours in the columns already placed, down then up,
// twice. A node without such neighbours keeps its own height, so it stays
// put.
func (l *graphLayout) reduceCrossings() {
	succs := make([][]int, len(l.jobs))
	for i, ps := range l.preds {
		for _, p := range ps {
			succs[p] = append(succs[p], i)
		}
	}
	l.bary = make([]float64, len(l.jobs))
	nLayers := len(l.cols)
	for range 2 {
		for c := 1; c < nLayers; c++ {
			l.sortColumn(l.cols[c], l.preds)
		}
		for c := nLayers - 2; c >= 0; c-- {
			l.sortColumn(l.cols[c], succs)
		}
	}
}

// sortColumn orders column c by the barycenters of its nodes' neighbours
// nbrs.
func (l *graphLayout) sortColumn(c []int, nbrs [][]int) {
	for _, i := range c {
		l.bary[i] = l.y(i)
		if len(nbrs[i]) > 0 {
			sum := 0.0
			for _, m := range nbrs[i] {
				sum += l.y(m)
			}
			l.bary[i] = sum / float64(len(nbrs[i]))
		}
	}
	slices.SortStableFunc(c, func(a, b int) int { return cmp.Compare(l.bary[a], l.bary[b]) })
	l.placeColumn(c)
}

// graph is the laid out graph: a node per live job, in the jobs' order, and
// an edge per dependency kept.
func (l *graphLayout) graph() Graph {
	g := Graph{Width: 2 * margin, Height: 2 * margin}
	if nLayers := len(l.cols); nLayers > 0 {
		g.Width = 2*margin + nLayers*NodeW + (nLayers-1)*colGap
		g.Height = 2*margin + l.tallest*pitch - rowGap
	}
	at := make([]int, len(l.jobs)) // node index in g.Nodes
	for i, j := range l.jobs {
		if !l.live(i) {
			continue
		}
		at[i] = len(g.Nodes)
		g.Nodes = append(g.Nodes, Node{
			ID: j.ID, State: j.State,
			X: margin + l.layer[i]*(NodeW+colGap), Y: margin + int(l.y(i)),
			W: NodeW, H: NodeH,
			Layer: l.layer[i], Missing: l.missing[i],
		})
	}
	for i, ps := range l.preds {
		for _, p := range ps {
			from, to := g.Nodes[at[p]], g.Nodes[at[i]]
			g.Edges = append(g.Edges, Edge{From: from.ID, To: to.ID, Path: edgePath(from, to)})
		}
	}
	return g
}

// assignLayers gives each node 1 + the largest layer of its dependencies,
// by a depth-first walk in node order. An edge to a node still on the walk's
// stack closes a cycle: it is dropped from the returned preds.
func assignLayers(preds [][]int, live func(int) bool) ([]int, [][]int) {
	const (
		unseen = iota
		onStack
		done
	)
	n := len(preds)
	layer := make([]int, n)
	mark := make([]int, n)
	kept := make([][]int, n)
	var visit func(i int)
	visit = func(i int) {
		mark[i] = onStack
		for _, p := range preds[i] {
			if mark[p] == unseen {
				visit(p)
			}
			if mark[p] == onStack {
				continue // closes a cycle
			}
			kept[i] = append(kept[i], p)
			layer[i] = max(layer[i], layer[p]+1)
		}
		mark[i] = done
	}
	for i := range preds {
		if live(i) && mark[i] == unseen {
			visit(i)
		}
	}
	return layer, kept
}

// edgePath is a cubic Bézier from the right middle of a to the left middle
// of b, leaving and arriving horizontally.
func edgePath(a, b Node) string {
	x1, y1 := a.X+a.W, a.Y+a.H/2
	x2, y2 := b.X, b.Y+b.H/2
	dx := max((x2-x1)/2, 24)
	var w svgBuf
	w.b = make([]byte, 0, 48)
	w.s("M ").i(x1).s(" ").i(y1).s(" C ").i(x1 + dx).s(" ").i(y1).s(", ").
		i(x2 - dx).s(" ").i(y2).s(", ").i(x2).s(" ").i(y2)
	return string(w.b)
}

// SVG renders the graph as a complete <svg> element. Colours come from the
// page's stylesheet (see GraphCSS); each node carries data-job with its id.
func (g Graph) SVG() template.HTML { return g.SVGLinked(nil) }

// SVGLinked is SVG with every node wrapped in a link to href(job id), for
// pages where clicking a job opens it. A nil href links nothing.
func (g Graph) SVGLinked(href func(job string) string) template.HTML {
	var w svgBuf
	w.b = make([]byte, 0, 512+400*len(g.Nodes)+150*len(g.Edges))
	w.s(`<svg xmlns="http://www.w3.org/2000/svg" class="job-graph" viewBox="0 0 `).i(g.Width).s(" ").i(g.Height).
		s(`" width="`).i(g.Width).s(`" height="`).i(g.Height).s(`" role="img" aria-label="Job graph">`)
	w.s(`<defs><marker id="job-graph-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">` +
		`<path class="arrow" d="M 0 1 L 9 5 L 0 9 z"/></marker></defs>`)
	// Edges first, so nodes are drawn over their ends.
	for _, e := range g.Edges {
		w.s(`<path class="edge" data-from="`).t(e.From).s(`" data-to="`).t(e.To).
			s(`" d="`).t(e.Path).s(`" marker-end="url(#job-graph-arrow)"/>`)
	}
	for _, n := range g.Nodes {
		state := stateClass(n.State)
		if href != nil {
			w.s(`<a href="`).t(href(n.ID)).s(`">`)
		}
		w.s(`<g class="node state-`).s(state).s(`" data-job="`).t(n.ID).s(`">`)
		w.s(`<title>`).t(n.ID).s(" (").s(state).s(")")
		if len(n.Missing) > 0 {
			w.s("\nwaits on unknown jobs: ").t(strings.Join(n.Missing, ", "))
		}
		w.s(`</title>`)
		w.s(`<rect x="`).i(n.X).s(`" y="`).i(n.Y).s(`" width="`).i(n.W).s(`" height="`).i(n.H).s(`" rx="6"/>`)
		w.s(`<text x="`).i(n.X + 10).s(`" y="`).i(n.Y + n.H/2).s(`" dominant-baseline="central">`).
			t(ellipsis(n.ID, labelRunes)).s(`</text></g>`)
		if href != nil {
			w.s(`</a>`)
		}
	}
	w.s(`</svg>`)
	return w.html()
}

// ellipsis shortens s to at most n runes, ending in "…" when cut.
func ellipsis(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// GraphCSS styles Graph.SVG; pages embed it in their stylesheet.
const GraphCSS = `
.job-graph { font: 13px system-ui, sans-serif; max-width: 100%; height: auto; }
.job-graph .edge { fill: none; stroke: #8c959f; stroke-width: 1.5; }
.job-graph .arrow { fill: #8c959f; }
.job-graph .node rect { stroke-width: 1.5; stroke: rgba(0,0,0,.25); }
.job-graph .node text { fill: #fff; }
.job-graph a .node:hover rect { stroke: #1f2328; stroke-width: 2.5; }
.job-graph .state-queued rect { fill: #d0d7de; }
.job-graph .state-queued text { fill: #1f2328; }
.job-graph .state-running rect { fill: #0969da; }
.job-graph .state-success rect { fill: #1a7f37; }
.job-graph .state-failure rect { fill: #cf222e; }
.job-graph .state-error rect { fill: #d1560c; }
.job-graph .state-canceled rect, .job-graph .state-skipped rect, .job-graph .state-unknown rect { fill: #f6f8fa; stroke: #afb8c1; stroke-dasharray: 4 3; }
.job-graph .state-canceled text, .job-graph .state-skipped text, .job-graph .state-unknown text { fill: #6e7781; }
.job-graph .state-blocked rect { fill: #8250df; }
.job-graph .legend-label { fill: #1f2328; }
`
