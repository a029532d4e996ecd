package view

import (
	"bytes"
	"testing"
	"time"
)

// The dashboard renders these on every page view: a 200-job build of 5,000
// events must take well under a couple of milliseconds.
func BenchmarkLayoutGraph(b *testing.B) {
	jobs := Jobs(bigBuild(200))
	for b.Loop() {
		_ = LayoutGraph(jobs).SVG()
	}
}

func BenchmarkBuildTimeline(b *testing.B) {
	evs := bigBuild(200)
	now := at(time.Hour)
	for b.Loop() {
		_ = BuildTimeline(evs, now).SVG()
	}
}

func BenchmarkJobsAndCommands(b *testing.B) {
	evs := bigBuild(200)
	for b.Loop() {
		_ = Jobs(evs)
		_ = Commands(evs)
	}
}

func BenchmarkANSIToHTML(b *testing.B) {
	line := []byte("\x1b[1m\x1b[32m✓\x1b[0m test passes <ok> \x1b[38;5;244m(12ms)\x1b[0m\x1b[K\r\n")
	in := bytes.Repeat(line, 1<<14) // ~1 MB
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		_ = ANSIToHTML(in)
	}
}

func TestBigBuild(t *testing.T) {
	evs := bigBuild(200)
	if n := len(evs); n < 5000 {
		t.Fatalf("bigBuild has %d events, want at least 5000", n)
	}
	g := LayoutGraph(Jobs(evs))
	if len(g.Nodes) != 200 || len(g.Edges) < 400 {
		t.Errorf("%d nodes, %d edges", len(g.Nodes), len(g.Edges))
	}
	tl := BuildTimeline(evs, at(time.Hour))
	if len(tl.Rows) != 201 || tl.PausedShare <= 0.5 || tl.PausedShare >= 1 {
		t.Errorf("%d rows, paused share %v", len(tl.Rows), tl.PausedShare)
	}
	if cs := Commands(evs); len(cs) != 200 || len(cs["job-007"]) != 9 {
		t.Errorf("commands of %d jobs", len(cs))
	}
}
