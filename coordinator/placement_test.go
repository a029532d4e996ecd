package coordinator

import (
	"fmt"
	"slices"
	"testing"
)

// oneBuild is what one build takes on the agents of these tests.
var oneBuild = Capacity{MilliCPUs: 1000, Memory: 1 << 30}

// agentRow is an agent of a placement table, with free millicpus (and
// memory for eight builds).
type agentRow struct {
	id       string
	cpu      int64
	labels   map[string]string
	cordoned bool
	draining bool
}

func roomsOf(rows ...agentRow) *agentRooms {
	rooms := newAgentRooms()
	for _, a := range rows {
		r := newAgentRoom(a.id, a.labels, Capacity{MilliCPUs: 8000, Memory: 8 << 30}, oneBuild)
		r.free.MilliCPUs, r.cordoned, r.draining = a.cpu, a.cordoned, a.draining
		rooms.add(r)
	}
	return &rooms
}

func queueOf(labels ...map[string]string) []*Build {
	q := make([]*Build, len(labels))
	for i, l := range labels {
		q[i] = &Build{ID: fmt.Sprintf("b%d", i+1), Labels: l}
	}
	return q
}

// outcome is where a build went ("a1") or why it waits ("waits: ...").
func outcome(p placement) string {
	if p.agent == "" {
		return "waits: " + p.why
	}
	return p.agent
}

var linux = map[string]string{"os": "linux"}

const (
	noAgent  = "waits: no agent is connected"
	busy     = "waits: waiting for capacity: every agent that could take it is busy"
	noLinux  = "waits: no connected agent has the labels os=linux: start one with --labels os=linux"
	shutting = "waits: every agent that could take it is cordoned or draining"
)

func TestPlacement(t *testing.T) {
	for _, c := range []struct {
		name   string
		agents []agentRow
		queue  []*Build
		want   []string
	}{
		{"no agent", nil, queueOf(nil, linux), []string{noAgent, noAgent}},
		{"the agent with the most free CPU first, as room shrinks",
			[]agentRow{{id: "a1", cpu: 1500}, {id: "a2", cpu: 3700}, {id: "a3", cpu: 2600}},
			queueOf(nil, nil, nil, nil, nil, nil, nil),
			[]string{"a2", "a2", "a3", "a2", "a3", "a1", busy}},
		{"full agents: the builds wait",
			[]agentRow{{id: "a1", cpu: 1000}},
			queueOf(nil, nil, nil),
			[]string{"a1", busy, busy}},
		{"labels: only an agent carrying them, the one with most room",
			[]agentRow{{id: "plain", cpu: 4000}, {id: "l1", cpu: 1500, labels: map[string]string{"os": "linux", "arch": "arm64"}}, {id: "l2", cpu: 2600, labels: linux}},
			queueOf(linux, linux, linux, linux),
			[]string{"l2", "l2", "l1", busy}},
		{"a build no agent can take holds back none behind it",
			[]agentRow{{id: "a1", cpu: 2000}},
			queueOf(linux, nil, linux, nil),
			[]string{noLinux, "a1", noLinux, "a1"}},
		{"cordoned and draining agents take nothing",
			[]agentRow{{id: "c", cpu: 4000, cordoned: true}, {id: "d", cpu: 4000, draining: true, labels: linux}},
			queueOf(nil, linux),
			[]string{shutting, shutting}},
		{"a cordoned agent does not make a busy one's builds say cordoned",
			[]agentRow{{id: "c", cpu: 4000, cordoned: true}, {id: "a1", cpu: 999}},
			queueOf(nil),
			[]string{busy}},
		{"builds without labels go to labelled agents too",
			[]agentRow{{id: "l1", cpu: 1000, labels: linux}},
			queueOf(nil, linux),
			[]string{"l1", busy}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, p := range place(c.queue, roomsOf(c.agents...), nil) {
				got = append(got, outcome(p))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

// Room counts CPU and memory both: an agent short of either takes nothing.
func TestPlacementNeedsCPUAndMemory(t *testing.T) {
	rooms := newAgentRooms()
	cpuOnly := newAgentRoom("cpu-only", nil, Capacity{MilliCPUs: 8000, Memory: 512 << 20}, oneBuild)
	memOnly := newAgentRoom("mem-only", nil, Capacity{MilliCPUs: 500, Memory: 8 << 30}, oneBuild)
	rooms.add(cpuOnly)
	rooms.add(memOnly)
	if got := outcome(place(queueOf(nil), &rooms, nil)[0]); got != busy {
		t.Errorf("got %q, want %q", got, busy)
	}
}

// Placing takes the build's room and counts it as being placed; once its
// lease is set it is the heartbeats' to count; giving it back never
// makes more room than the agent has.
func TestARoomsAccountOfABuild(t *testing.T) {
	capacity := Capacity{MilliCPUs: 2000, Memory: 2 << 30}
	rooms := newAgentRooms()
	r := newAgentRoom("a1", nil, capacity, oneBuild)
	rooms.add(r)
	if got, _ := rooms.take(&Build{}); got != r {
		t.Fatalf("took %v, want a1", got)
	}
	if want := (Capacity{MilliCPUs: 1000, Memory: 1 << 30}); r.free != want || r.placing != oneBuild {
		t.Errorf("after placing: free %+v placing %+v, want free %+v placing %+v", r.free, r.placing, want, oneBuild)
	}
	r.placed()
	r.placed() // never below none
	if r.placing != (Capacity{}) {
		t.Errorf("placing %+v once the lease is set, want none", r.placing)
	}
	r.giveBack()
	r.giveBack()
	if r.free != capacity {
		t.Errorf("free %+v after giving back twice, want the capacity %+v", r.free, capacity)
	}
}

// Every change that may give room moves the rooms' version, so that a
// dispatch pass looks again at builds that found none; placing does not.
func TestTheRoomsVersionMovesWhenRoomMayGrow(t *testing.T) {
	rooms := newAgentRooms()
	r := newAgentRoom("a1", nil, Capacity{MilliCPUs: 4000, Memory: 4 << 30}, oneBuild)
	v := rooms.version
	rooms.add(r)
	if rooms.version == v {
		t.Error("a connection did not move the version")
	}
	v = rooms.version
	place(queueOf(nil, nil), &rooms, nil)
	if rooms.version != v {
		t.Error("placing moved the version")
	}
	r.giveBack()
	rooms.changed(r)
	if rooms.version == v {
		t.Error("a change did not move the version")
	}
	v = rooms.version
	rooms.reorder()
	if rooms.version == v {
		t.Error("reordering did not move the version")
	}
}

// A room changed without a word (its agent cordoned behind changed's
// back) is passed over; one replaced by a new connection is let go.
func TestPlacementSkipsRoomsNoLongerReady(t *testing.T) {
	rooms := newAgentRooms()
	big := newAgentRoom("big", nil, Capacity{MilliCPUs: 8000, Memory: 8 << 30}, oneBuild)
	small := newAgentRoom("small", nil, Capacity{MilliCPUs: 2000, Memory: 2 << 30}, oneBuild)
	rooms.add(big)
	rooms.add(small)
	big.cordoned = true // not told
	if got := outcome(place(queueOf(nil), &rooms, nil)[0]); got != "small" {
		t.Errorf("went to %q, want small", got)
	}

	again := newAgentRoom("small", nil, Capacity{MilliCPUs: 2000, Memory: 2 << 30}, oneBuild)
	rooms.add(again)
	rooms.remove(small) // the old connection's: the new one stays
	if rooms.all["small"] != again || small.index >= 0 {
		t.Fatalf("the new connection's room was let go, or the old one kept in order")
	}
	big.cordoned = false
	rooms.reorder()
	if got := outcome(place(queueOf(nil, nil), &rooms, nil)[1]); got != "big" {
		t.Errorf("went to %q, want big", got)
	}
}
