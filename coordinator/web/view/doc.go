// Package view turns a build's events into what the dashboard's pages draw:
// the job graph, the timeline (with the script container's pauses), the
// commands of each job and terminal output rendered as HTML.
//
// It is pure: no I/O, no HTTP, no goroutines and no package-level mutable
// state. Every function takes events (usually those of the latest attempt
// only) and returns values; the SVG and HTML it returns are complete,
// escaped and balanced, so handlers can drop them into templates as is.
package view
