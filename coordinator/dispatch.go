package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/monkeyci/monkeyci/events"
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
	var placed []placement
	var waiting []*Build
	kept := c.queue[:0]
	for _, b := range c.queue {
		conn, why := c.placeLocked(b)
		if conn == nil {
			kept = append(kept, b)
			if b.Waiting != why {
				b.Waiting = why
				waiting = append(waiting, b)
			}
			continue
		}
		conn.free.MilliCPUs -= c.cfg.Script.MilliCPUs
		conn.free.Memory -= c.cfg.Script.Memory
		placed = append(placed, placement{b, conn})
	}
	c.queue = kept
	c.mu.Unlock()

	for _, p := range placed {
		c.assign(ctx, p)
	}
	for _, b := range waiting {
		if err := c.cfg.Store.SetWaiting(ctx, b.ID, b.Waiting); err != nil {
			c.log.Warn("could not record why a build waits", "build", b.ID, "error", err)
		}
	}
}

func (c *Coordinator) assign(ctx context.Context, p placement) {
	b, attempt := p.build, p.build.Attempt+1
	expires := c.cfg.Now().Add(c.cfg.Lease)
	if err := c.cfg.Store.Assign(ctx, b.ID, attempt, p.conn.id, expires); err != nil {
		if errors.Is(err, ErrStale) || errors.Is(err, ErrNotFound) {
			// Ended or moved meanwhile (a cancel): the store knows best.
			c.log.Info("build not dispatched", "build", b.ID, "reason", err)
			return
		}
		c.log.Error("could not assign a build; it stays queued", "build", b.ID, "error", err)
		c.mu.Lock()
		c.enqueueLocked(b)
		c.mu.Unlock()
		return
	}
	c.mu.Lock()
	c.running[b.ID] = &lease{attempt: attempt, agent: p.conn.id, need: c.cfg.Script}
	c.mu.Unlock()
	b.Attempt, b.State, b.Agent, b.LeaseExpires = attempt, Running, p.conn.id, expires
	p.conn.assign(b)
}

// placeLocked picks the agent for b: of those connected, ready, carrying
// b's labels and with room for its script, the one with the most free
// CPU. Otherwise it says why none.
func (c *Coordinator) placeLocked(b *Build) (*agentConn, string) {
	if len(c.agents) == 0 {
		return nil, "no agent is connected"
	}
	var best *agentConn
	labelled, ready := 0, 0
	for _, a := range c.agents {
		if !hasLabels(a.labels, b.Labels) {
			continue
		}
		labelled++
		if a.cordoned || a.draining {
			continue
		}
		ready++
		if a.free.covers(c.cfg.Script) && (best == nil || a.free.MilliCPUs > best.free.MilliCPUs) {
			best = a
		}
	}
	switch {
	case best != nil:
		return best, ""
	case labelled == 0:
		return nil, "no connected agent has the labels " + formatLabels(b.Labels)
	case ready == 0:
		return nil, "every agent that could take it is cordoned or draining"
	}
	return nil, "waiting for capacity: every agent that could take it is busy"
}

// enqueueLocked puts b in the queue in order of creation: a build sent
// back after its agent was lost keeps its place.
func (c *Coordinator) enqueueLocked(b *Build) {
	i := sort.Search(len(c.queue), func(i int) bool { return c.queue[i].Created.After(b.Created) })
	c.queue = append(c.queue, nil)
	copy(c.queue[i+1:], c.queue[i:])
	c.queue[i] = b
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

// expireLeases sends the builds of lost agents back to the queue, as a new
// attempt, or ends them once they have had every attempt.
func (c *Coordinator) expireLeases(ctx context.Context) {
	running, err := c.cfg.Store.Running(ctx)
	if err != nil {
		c.log.Error("could not read running builds", "error", err)
		return
	}
	now := c.cfg.Now()
	for _, b := range running {
		if !b.LeaseExpires.Before(now) {
			continue
		}
		c.mu.Lock()
		conn := c.agents[b.Agent]
		delete(c.running, b.ID)
		c.mu.Unlock()
		if conn != nil {
			conn.cancel(b.ID, b.Attempt) // late, but it frees the agent
		}
		if b.Attempt >= c.cfg.MaxAttempts {
			msg := fmt.Sprintf("agent lost: the lease of attempt %d ran out, and that was the last attempt", b.Attempt)
			if err := c.cfg.Store.Finish(ctx, b.ID, b.Attempt, events.Error, msg); err != nil && !errors.Is(err, ErrStale) {
				c.log.Error("could not end a build whose agent was lost", "build", b.ID, "error", err)
			}
			c.notifyEnded(b.ID)
			continue
		}
		if err := c.cfg.Store.Requeue(ctx, b.ID, b.Attempt); err != nil {
			if !errors.Is(err, ErrStale) {
				c.log.Error("could not requeue a build whose agent was lost", "build", b.ID, "error", err)
			}
			continue
		}
		c.log.Warn("lease ran out: build queued again", "build", b.ID, "attempt", b.Attempt, "agent", b.Agent)
		b.State, b.Agent = Queued, ""
		c.mu.Lock()
		c.enqueueLocked(&b)
		c.mu.Unlock()
	}
}
