package coordinator

import (
	"container/heap"
	"fmt"
	"sort"
	"strings"
)

// Placement: which agent a queued build goes to. It is a function of the
// queue and of the agents' room alone (no lock, no store, no stream): the
// agent registry runs it under its lock, and tests run it on tables.

// agentRoom is a connected agent as placement sees it: what it carries
// and the room it has for builds.
type agentRoom struct {
	agent    string
	labels   map[string]string
	capacity Capacity
	// need is what one build takes here (Coordinator.needOn).
	need Capacity
	// free is the agent's last reported free capacity, less what was
	// sent to it since.
	free Capacity
	// placing is the room of builds placed here whose lease is not set
	// yet (their store write is under way): a heartbeat written before
	// them does not show it, so it is taken from what heartbeats say.
	placing  Capacity
	cordoned bool
	draining bool
	// index is the room's place in agentRooms.ready, -1 when not there.
	index int
}

func newAgentRoom(agent string, labels map[string]string, capacity, need Capacity) *agentRoom {
	return &agentRoom{agent: agent, labels: labels, capacity: capacity, need: need, free: capacity, index: -1}
}

// takeNeed takes a build's room here, for a build being placed.
func (r *agentRoom) takeNeed() {
	r.free.MilliCPUs -= r.need.MilliCPUs
	r.free.Memory -= r.need.Memory
	r.placing.MilliCPUs += r.need.MilliCPUs
	r.placing.Memory += r.need.Memory
}

// placed notes that a build placed here has its lease now (or will not
// get one): heartbeats account for it from here on.
func (r *agentRoom) placed() {
	r.placing.MilliCPUs = max(r.placing.MilliCPUs-r.need.MilliCPUs, 0)
	r.placing.Memory = max(r.placing.Memory-r.need.Memory, 0)
}

// giveBack returns the room of a build that ended here, or never started:
// until the agent's next heartbeat says what it has free, it takes that
// much more. It never exceeds the agent's capacity.
func (r *agentRoom) giveBack() {
	r.free.MilliCPUs = min(r.free.MilliCPUs+r.need.MilliCPUs, r.capacity.MilliCPUs)
	r.free.Memory = min(r.free.Memory+r.need.Memory, r.capacity.Memory)
}

// agentRooms are the connected agents' rooms. The ready ones (neither
// cordoned nor draining, with room for a build) are in a heap, most free
// CPU first: a build without labels takes the top one.
type agentRooms struct {
	all   map[string]*agentRoom // by agent id
	ready roomHeap
	// version counts the changes that may give a build room where it had
	// none: every change but placing, which only takes room.
	version uint64
}

func newAgentRooms() agentRooms { return agentRooms{all: map[string]*agentRoom{}} }

// add takes in a newly connected agent's room.
func (f *agentRooms) add(r *agentRoom) {
	f.all[r.agent] = r
	f.changed(r)
}

// remove lets go of a disconnected agent's room.
func (f *agentRooms) remove(r *agentRoom) {
	if f.all[r.agent] == r {
		delete(f.all, r.agent)
	}
	f.changed(r)
}

// changed puts r in its place among the ready rooms, or out of them,
// after a change to its free room, cordon or drain. Every such change
// calls it; reorder, on each lease tick, puts right one that did not.
func (f *agentRooms) changed(r *agentRoom) {
	f.version++
	f.fix(r)
}

func (f *agentRooms) isReady(r *agentRoom) bool {
	return f.all[r.agent] == r && !r.cordoned && !r.draining && r.free.covers(r.need)
}

func (f *agentRooms) fix(r *agentRoom) {
	ready := f.isReady(r)
	switch {
	case ready && r.index < 0:
		heap.Push(&f.ready, r)
	case ready:
		heap.Fix(&f.ready, r.index)
	case r.index >= 0:
		heap.Remove(&f.ready, r.index)
	}
}

// reorder makes the ready heap again from every room.
func (f *agentRooms) reorder() {
	f.version++
	for _, r := range f.ready {
		r.index = -1
	}
	clear(f.ready)
	f.ready = f.ready[:0]
	for _, r := range f.all {
		if f.isReady(r) {
			r.index = len(f.ready)
			f.ready = append(f.ready, r)
		}
	}
	heap.Init(&f.ready)
}

// take picks the room for b: of the ready rooms carrying b's labels, the
// one with the most free CPU; it takes b's need from it. Otherwise it
// says why none.
func (f *agentRooms) take(b *Build) (*agentRoom, string) {
	best := -1
	if len(b.Labels) == 0 {
		for len(f.ready) > 0 && !f.isReady(f.ready[0]) {
			f.fix(f.ready[0]) // changed behind changed's back: out
		}
		if len(f.ready) > 0 {
			best = 0
		}
	} else {
		for i, r := range f.ready {
			if hasLabels(r.labels, b.Labels) && f.isReady(r) && (best < 0 || r.free.MilliCPUs > f.ready[best].free.MilliCPUs) {
				best = i
			}
		}
	}
	if best < 0 {
		return nil, f.whyNone(b.Labels)
	}
	r := f.ready[best]
	r.takeNeed()
	f.fix(r)
	return r, ""
}

// whyNone says why no agent can take a build with labels.
func (f *agentRooms) whyNone(labels map[string]string) string {
	if len(f.all) == 0 {
		return "no agent is connected"
	}
	labelled, open := 0, 0
	for _, r := range f.all {
		if !hasLabels(r.labels, labels) {
			continue
		}
		labelled++
		if !r.cordoned && !r.draining {
			open++
		}
	}
	switch {
	case labelled == 0:
		// Said with what to do: an agent is given labels at its start.
		return "no connected agent has the labels " + formatLabels(labels) + ": start one with --labels " + formatLabels(labels)
	case open == 0:
		return "every agent that could take it is cordoned or draining"
	}
	return "waiting for capacity: every agent that could take it is busy"
}

// placement is where a queued build goes: an agent, or why none.
type placement struct {
	build *Build
	agent string // "": none can take it now
	why   string
}

// repoLimits are the repositories' bounds on their builds running at
// once, and how many run (or are being sent) now, for a pass.
type repoLimits struct {
	max    map[string]int // by repository; absent or 0: no bound
	active map[string]int // running or being sent, by bounded repository
	placed map[string]int // in this pass
}

// full says why a build of repo must wait for one of its repository's to
// end, or "".
func (l *repoLimits) full(repo string) string {
	if l == nil || l.max[repo] <= 0 || l.active[repo]+l.placed[repo] < l.max[repo] {
		return ""
	}
	return fmt.Sprintf("its repository runs as many builds as it may at once (%d, repos add --max-running)", l.max[repo])
}

// took counts a build of repo placed in this pass.
func (l *repoLimits) took(repo string) {
	if l == nil || l.max[repo] <= 0 {
		return
	}
	if l.placed == nil {
		l.placed = map[string]int{}
	}
	l.placed[repo]++
}

// place places the queued builds, in order, taking their room from the
// agents they go to. A build that cannot go anywhere, or whose repository
// runs as many builds as it may (limits, nil: none), says why; it does not
// hold back the builds behind it that can go elsewhere.
func place(queue []*Build, rooms *agentRooms, limits *repoLimits) []placement {
	out := make([]placement, len(queue))
	// Within a pass room only shrinks, so a set of labels that found no
	// agent finds none for the builds after it either.
	var whyByLabels map[string]string
	for i, b := range queue {
		out[i].build = b
		if why := limits.full(b.Repo); why != "" {
			out[i].why = why
			continue
		}
		key := ""
		if len(b.Labels) > 0 {
			key = formatLabels(b.Labels)
		}
		if why, ok := whyByLabels[key]; ok {
			out[i].why = why
			continue
		}
		r, why := rooms.take(b)
		if r == nil {
			if whyByLabels == nil {
				whyByLabels = map[string]string{}
			}
			whyByLabels[key] = why
			out[i].why = why
			continue
		}
		out[i].agent = r.agent
		limits.took(b.Repo)
	}
	return out
}

// roomHeap orders rooms by free CPU, most first (container/heap); each
// room knows its index.
type roomHeap []*agentRoom

func (h roomHeap) Len() int           { return len(h) }
func (h roomHeap) Less(i, j int) bool { return h[i].free.MilliCPUs > h[j].free.MilliCPUs }
func (h roomHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *roomHeap) Push(x any) {
	r := x.(*agentRoom)
	r.index = len(*h)
	*h = append(*h, r)
}
func (h *roomHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	r.index = -1
	*h = old[:len(old)-1]
	return r
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func formatLabels(l map[string]string) string {
	parts := make([]string, 0, len(l))
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
