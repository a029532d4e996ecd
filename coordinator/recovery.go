package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/monkeyci/monkeyci/events"
)

// Recovery: a dead agent's builds move on in seconds, not a lease. A
// killed agent's process closes its sockets at once, so its stream ends:
// if it does not come back within the grace its builds are queued again
// (agent lost); if it comes back without builds it was assigned (it was
// restarted), those are queued again at once (agent restarted). The lease
// still covers what sends no signal (a partition, a frozen machine).

// DefaultAgentGrace is how long an agent whose stream ended may take to
// come back before its builds are queued again.
const DefaultAgentGrace = 5 * time.Second

// recoveryTimeout bounds the store changes of one recovery.
const recoveryTimeout = 30 * time.Second

// graceOver queues again the builds of an agent that did not come back
// within the grace after conn ended.
func (c *Coordinator) graceOver(conn *agentConn) {
	if refs, lost := c.agents.graceOver(conn); lost {
		c.recover(conn.id, refs, ReasonAgentLost)
	}
}

// recover queues the attempts again that ran on agent, for reason.
func (c *Coordinator) recover(agent string, refs []attemptRef, reason string) {
	if len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), recoveryTimeout)
	defer cancel()
	for _, r := range refs {
		b, err := c.cfg.Store.GetBuild(ctx, r.build)
		if err != nil {
			c.log.Error("could not read a build to queue it again", "build", r.build, "error", err)
			continue
		}
		if b.State != Running || b.Attempt != r.attempt || b.Agent != agent {
			continue // it moved on meanwhile
		}
		c.log.Warn("queueing a build again", "build", b.ID, "attempt", b.Attempt, "agent", agent, "reason", reason)
		c.requeueAttempt(ctx, b, reason)
	}
	c.poke()
}

// requeueAttempt sends b's running attempt back to the queue as the next
// attempt, which exists for reason; or ends the build in error when that
// was its last attempt.
func (c *Coordinator) requeueAttempt(ctx context.Context, b Build, reason string) {
	canceled := "" // why the coordinator canceled the attempt, if it did
	if l, ok := c.leases.current(b.ID); ok && l.attempt == b.Attempt {
		canceled = l.canceled
	}
	conn := c.agents.connected(b.Agent)
	c.dispatcher.dropLease(b.ID, b.Attempt)
	if conn != nil {
		conn.cancel(b.ID, b.Attempt) // late, but it frees the agent
	}
	switch {
	case canceled != "": // superseded, timed out: it ends so, rather than runs again
		c.endAttempt(ctx, b, events.Canceled, canceled, canceled)
		return
	case b.Attempt >= c.cfg.MaxAttempts:
		c.endAttempt(ctx, b, events.Error, fmt.Sprintf("%s: attempt %d was the last", reason, b.Attempt), reason)
		return
	}
	if err := c.cfg.Store.Requeue(ctx, b.ID, b.Attempt, reason); err != nil {
		if !errors.Is(err, ErrStale) {
			c.log.Error("could not queue a build again", "build", b.ID, "reason", reason, "error", err)
		}
		return
	}
	b.State, b.Agent, b.queuedAt = Queued, "", c.cfg.Now()
	if b.AttemptReasons == nil {
		b.AttemptReasons = map[int]string{}
	}
	b.AttemptReasons[b.Attempt+1] = reason
	c.dispatcher.requeue(&b)
	c.changed()
	c.logsEnded(b.ID)
}

// endAttempt ends b at its running attempt with result and message, as
// the coordinator decided; its forge's status says summary.
func (c *Coordinator) endAttempt(ctx context.Context, b Build, result events.Result, message, summary string) {
	err := c.cfg.Store.Finish(ctx, b.ID, b.Attempt, result, message)
	if err == nil {
		c.buildEnded(b.ID, c.statuses.refOf(&b), result, summary)
		return
	}
	if !errors.Is(err, ErrStale) {
		c.log.Error("could not end a build", "build", b.ID, "result", result, "message", message, "error", err)
	}
	c.notifyEnded(b.ID)
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
