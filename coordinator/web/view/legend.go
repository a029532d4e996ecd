package view

import "html/template"

// legendEntry is one swatch of the graph's legend: a state as GraphCSS
// draws it, and what it means.
type legendEntry struct{ state, label string }

// legend lists every look a node can have, in the order a job goes
// through them. Canceled and skipped share the dashed look.
var legend = []legendEntry{
	{StateQueued, "queued"},
	{StateBlocked, "blocked: waits for a person"},
	{StateRunning, "running"},
	{StateSuccess, "success"},
	{StateFailure, "failure"},
	{StateError, "error"},
	{StateSkipped, "skipped or canceled"},
}

// Legend geometry: rows of a swatch and its label.
const (
	legendSwatchW = 28
	legendSwatchH = 16
	legendRow     = 22
	legendWidth   = 340 // the longest label, at 13 px, fits
)

// GraphLegend renders what the graph's colours, shapes and arrows mean, as
// an <svg> drawn with the graph's own classes, so the two cannot disagree.
func GraphLegend() template.HTML {
	rows := len(legend) + 1 // the states, then the arrow
	height := margin + rows*legendRow
	var w svgBuf
	w.s(`<svg xmlns="http://www.w3.org/2000/svg" class="job-graph graph-legend" viewBox="0 0 `).i(legendWidth).s(" ").i(height).
		s(`" width="`).i(legendWidth).s(`" height="`).i(height).s(`" role="img" aria-label="Legend of the job graph">`)
	w.s(`<defs><marker id="job-graph-legend-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">` +
		`<path class="arrow" d="M 0 1 L 9 5 L 0 9 z"/></marker></defs>`)
	y := margin / 2
	for _, e := range legend {
		w.s(`<g class="node state-`).s(e.state).s(`" data-legend="`).s(e.state).s(`">`)
		w.s(`<rect x="0" y="`).i(y).s(`" width="`).i(legendSwatchW).s(`" height="`).i(legendSwatchH).s(`" rx="4"/></g>`)
		w.s(`<text class="legend-label" x="`).i(legendSwatchW + 8).s(`" y="`).i(y + legendSwatchH/2).
			s(`" dominant-baseline="central">`).t(e.label).s(`</text>`)
		y += legendRow
	}
	mid := y + legendSwatchH/2
	w.s(`<path class="edge" data-legend="edge" d="M 0 `).i(mid).s(` L `).i(legendSwatchW).s(` `).i(mid).
		s(`" marker-end="url(#job-graph-legend-arrow)"/>`)
	w.s(`<text class="legend-label" x="`).i(legendSwatchW + 8).s(`" y="`).i(mid).
		s(`" dominant-baseline="central">`).t("runs after: dependency → dependent").s(`</text>`)
	w.s(`</svg>`)
	return w.html()
}
