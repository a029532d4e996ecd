package coordinator

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/monkeyci/monkeyci/forge/status"
)

// placement is a queued build matched with an agent.
type placement struct {
	build *Build
	conn  *agentConn
}

// dispatch sends queued builds, oldest first, to agents that have their
// labels and room for their script. A build that cannot go anywhere stays
// queued and says why; it does not hold back the builds behind it that
// can go elsewhere.
func (c *Coordinator) dispatch(ctx context.Context) {
	c.mu.Lock()
	if len(c.queue) == 0 {
		c.mu.Unlock()
		return
	}
	var placed []placement
	type wait struct{ id, why string }
	var waiting []wait
	p := placer{c: c}
	kept := c.queue[:c.settled]
	for _, b := range c.queue[c.settled:] {
		conn, why := p.place(b)
		if conn == nil {
			kept = append(kept, b)
			if b.Waiting != why {
				b.Waiting = why
				waiting = append(waiting, wait{b.ID, why})
			}
			continue
		}
		placed = append(placed, placement{b, conn})
	}
	clear(c.queue[len(kept):])
	c.queue = kept
	// Placing only took room: every build kept found none, and finds none
	// until an agent changes.
	c.settled = len(kept)
	c.mu.Unlock()

	// The store changes run side by side, so that the store commits them
	// together (group commit) rather than one commit each.
	concurrently(len(placed), func(i int) { c.assign(ctx, placed[i]) })
	concurrently(len(waiting), func(i int) {
		w := waiting[i]
		if err := c.cfg.Store.SetWaiting(ctx, w.id, w.why); err != nil && !errors.Is(err, ErrStale) {
			c.log.Warn("could not record why a build waits", "build", w.id, "error", err)
		}
	})
	if len(waiting) > 0 {
		c.changed()
	}
}

// maxConcurrentChanges bounds the goroutines of concurrently.
const maxConcurrentChanges = 256

// concurrently runs f(0) ... f(n-1) from up to maxConcurrentChanges
// goroutines and returns when all have.
func concurrently(n int, f func(i int)) {
	switch n {
	case 0:
		return
	case 1:
		f(0)
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, maxConcurrentChanges) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				f(i)
			}
		}()
	}
	wg.Wait()
}

func (c *Coordinator) assign(ctx context.Context, p placement) {
	b, attempt := p.build, p.build.Attempt+1
	expires := c.cfg.Now().Add(c.cfg.Lease)
	if err := c.cfg.Store.Assign(ctx, b.ID, attempt, p.conn.id, expires); err != nil {
		c.mu.Lock()
		c.unplaceLocked(p.conn)
		if errors.Is(err, ErrStale) || errors.Is(err, ErrNotFound) {
			// Ended or moved meanwhile (a cancel): the store knows best.
			c.mu.Unlock()
			c.log.Info("build not dispatched", "build", b.ID, "reason", err)
			return
		}
		c.enqueueLocked(b)
		c.mu.Unlock()
		c.log.Error("could not assign a build; it stays queued", "build", b.ID, "error", err)
		return
	}
	b.Attempt, b.State, b.Agent, b.LeaseExpires = attempt, Running, p.conn.id, expires
	c.started(b, p.conn)
}

// started follows a build's new attempt, stored running on conn's agent,
// and sends it there.
func (c *Coordinator) started(b *Build, conn *agentConn) {
	c.mu.Lock()
	// A new attempt has no events yet: none is stored, and that is known.
	ref := c.statuses.refOf(b)
	c.startLeaseLocked(b.ID, lease{attempt: b.Attempt, agent: conn.id, forge: ref}, c.need(conn))
	c.placedLocked(conn)
	c.mu.Unlock()
	c.changed()
	c.metrics.assigned(b, c.cfg.Now())
	var secrets map[string]string
	var err error
	if !b.Fork { // a fork's pull request is anyone's code
		secrets, err = c.secretsOf(context.Background(), b.Repo)
	}
	if err != nil {
		// The agent is told nothing: the lease runs out and the build is
		// tried again, or ends in error, saying why in the log.
		c.log.Error("could not read the build's secrets; not sent", "build", b.ID, "error", err)
		return
	}
	url, err := c.fetchURL(context.Background(), b)
	if err != nil {
		c.log.Error("could not read the build's URL credential; not sent", "build", b.ID, "error", err)
		return
	}
	c.statuses.note(ref, status.Running, fmt.Sprintf("running on %s (attempt %d)", conn.name, b.Attempt))
	conn.assign(b, url, secrets)
}

// releaseLocked gives back to an agent the reservation of an attempt that
// ended, or that never started, on it: until its next heartbeat says what
// it has free, it takes that much more. It never exceeds the agent's
// capacity.
func (c *Coordinator) releaseLocked(conn *agentConn) {
	if conn == nil {
		return
	}
	need := c.need(conn)
	conn.free.MilliCPUs = min(conn.free.MilliCPUs+need.MilliCPUs, conn.capacity.MilliCPUs)
	conn.free.Memory = min(conn.free.Memory+need.Memory, conn.capacity.Memory)
	c.fixLocked(conn)
}

// need is the room a build takes on an agent when it is sent there: its
// script, and the first job's memory beside it; the job's CPU too when the
// agent does not pause scripts (else the waiting script lends it). Less,
// and two builds' scripts could hold what each other's jobs wait for.
func (c *Coordinator) need(a *agentConn) Capacity { return c.needOn(a.pauses) }

func (c *Coordinator) needOn(pauses bool) Capacity {
	n := Capacity{MilliCPUs: c.cfg.Script.MilliCPUs, Memory: c.cfg.Script.Memory + c.cfg.Job.Memory}
	if !pauses {
		n.MilliCPUs += c.cfg.Job.MilliCPUs
	}
	return n
}

// BuildsPer says how many builds at once an agent of that capacity is sent
// (0: none fits).
func (c *Coordinator) BuildsPer(agent Capacity, pauses bool) int {
	n := c.needOn(pauses)
	fit := agent.MilliCPUs / max(n.MilliCPUs, 1)
	if n.Memory > 0 {
		fit = min(fit, agent.Memory/n.Memory)
	}
	return int(fit)
}

// placer places the queued builds of one dispatch pass (under c.mu).
// Within a pass the agents' free capacity only shrinks, so a set of labels
// that found no agent finds none for the builds after it either.
type placer struct {
	c *Coordinator
	// why says, by label set, why no agent could take a build.
	why map[string]string
}

// place picks the agent for b and takes b's script reservation from it,
// or says why none can take it.
func (p *placer) place(b *Build) (*agentConn, string) {
	key := ""
	if len(b.Labels) > 0 {
		key = formatLabels(b.Labels)
	}
	if why, ok := p.why[key]; ok {
		return nil, why
	}
	a, why := p.c.placeLocked(b)
	if a == nil {
		if p.why == nil {
			p.why = map[string]string{}
		}
		p.why[key] = why
	}
	return a, why
}

// placeLocked picks the agent for b: of those connected, ready, carrying
// b's labels and with room for its script, the one with the most free
// CPU; it takes b's script reservation from it. Otherwise it says why
// none.
func (c *Coordinator) placeLocked(b *Build) (*agentConn, string) {
	best := -1
	if len(b.Labels) == 0 {
		for len(c.ready) > 0 && !c.readyLocked(c.ready[0]) {
			c.fixLocked(c.ready[0]) // changed behind fixLocked's back: out
		}
		if len(c.ready) > 0 {
			best = 0
		}
	} else {
		for i, a := range c.ready {
			if hasLabels(a.labels, b.Labels) && c.readyLocked(a) && (best < 0 || a.free.MilliCPUs > c.ready[best].free.MilliCPUs) {
				best = i
			}
		}
	}
	if best < 0 {
		return nil, c.whyNotPlacedLocked(b)
	}
	a := c.ready[best]
	need := c.need(a)
	a.free.MilliCPUs -= need.MilliCPUs
	a.free.Memory -= need.Memory
	a.placing.MilliCPUs += need.MilliCPUs
	a.placing.Memory += need.Memory
	c.fixLocked(a)
	return a, ""
}

// placedLocked notes that a build placed on conn has its lease now (or
// will not get one): heartbeats account for it from here on.
func (c *Coordinator) placedLocked(conn *agentConn) {
	need := c.need(conn)
	conn.placing.MilliCPUs = max(conn.placing.MilliCPUs-need.MilliCPUs, 0)
	conn.placing.Memory = max(conn.placing.Memory-need.Memory, 0)
}

// unplaceLocked gives back the room of a build placed on conn that was
// not sent after all (its store write failed).
func (c *Coordinator) unplaceLocked(conn *agentConn) {
	c.placedLocked(conn)
	c.releaseLocked(conn)
}

// readyLocked says whether a may be sent a build: connected, neither
// cordoned nor draining, with room for a script.
func (c *Coordinator) readyLocked(a *agentConn) bool {
	return c.agents[a.id] == a && !a.cordoned && !a.draining && a.free.covers(c.need(a))
}

// fixLocked puts a in its place in c.ready, or out of it, after a change
// to its connection, free capacity, cordon or drain. Every such change
// calls it; rebuildReadyLocked, on each lease tick, puts right one that
// did not.
func (c *Coordinator) fixLocked(a *agentConn) {
	c.settled = 0 // a has more room, perhaps
	ready := c.readyLocked(a)
	switch {
	case ready && a.heapIndex < 0:
		heap.Push(&c.ready, a)
	case ready:
		heap.Fix(&c.ready, a.heapIndex)
	case a.heapIndex >= 0:
		heap.Remove(&c.ready, a.heapIndex)
	}
}

// rebuildReadyLocked makes c.ready again from the connected agents.
func (c *Coordinator) rebuildReadyLocked() {
	c.settled = 0
	for _, a := range c.ready {
		a.heapIndex = -1
	}
	clear(c.ready)
	c.ready = c.ready[:0]
	for _, a := range c.agents {
		if c.readyLocked(a) {
			a.heapIndex = len(c.ready)
			c.ready = append(c.ready, a)
		}
	}
	heap.Init(&c.ready)
}

// whyNotPlacedLocked says why no agent can take b.
func (c *Coordinator) whyNotPlacedLocked(b *Build) string {
	if len(c.agents) == 0 {
		return "no agent is connected"
	}
	labelled, ready := 0, 0
	for _, a := range c.agents {
		if !hasLabels(a.labels, b.Labels) {
			continue
		}
		labelled++
		if !a.cordoned && !a.draining {
			ready++
		}
	}
	switch {
	case labelled == 0:
		return "no connected agent has the labels " + formatLabels(b.Labels)
	case ready == 0:
		return "every agent that could take it is cordoned or draining"
	}
	return "waiting for capacity: every agent that could take it is busy"
}

// agentHeap orders agents by free CPU, most first (container/heap); each
// agent knows its index.
type agentHeap []*agentConn

func (h agentHeap) Len() int           { return len(h) }
func (h agentHeap) Less(i, j int) bool { return h[i].free.MilliCPUs > h[j].free.MilliCPUs }
func (h agentHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}
func (h *agentHeap) Push(x any) {
	a := x.(*agentConn)
	a.heapIndex = len(*h)
	*h = append(*h, a)
}
func (h *agentHeap) Pop() any {
	old := *h
	a := old[len(old)-1]
	old[len(old)-1] = nil
	a.heapIndex = -1
	*h = old[:len(old)-1]
	return a
}

// enqueueLocked puts b in the queue in order of creation: a build sent
// back after its agent was lost keeps its place.
func (c *Coordinator) enqueueLocked(b *Build) {
	i := sort.Search(len(c.queue), func(i int) bool { return c.queue[i].Created.After(b.Created) })
	c.queue = append(c.queue, nil)
	copy(c.queue[i+1:], c.queue[i:])
	c.queue[i] = b
	c.settled = min(c.settled, i)
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

// expireLeases sends the builds whose lease ran out back to the queue, as a
// new attempt, or ends them once they have had every attempt.
func (c *Coordinator) expireLeases(ctx context.Context) {
	running, err := c.cfg.Store.Running(ctx)
	if err != nil {
		c.log.Error("could not read running builds", "error", err)
		return
	}
	now := c.cfg.Now()
	for _, b := range running {
		if b.LeaseExpires.Before(now) {
			c.log.Warn("lease ran out", "build", b.ID, "attempt", b.Attempt, "agent", b.Agent)
			c.requeueAttempt(ctx, b, ReasonLeaseExpired)
		}
	}
}
