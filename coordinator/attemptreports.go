package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// What agents report of the attempts they run (heartbeats, events, logs,
// ends, hand-backs, declines): each is taken only from the agent that
// holds the attempt's lease (notCurrent), and acknowledged once stored.

// MaxLogChunk is the largest log chunk an agent may send.
const MaxLogChunk = 1 << 20

// notCurrent says why an attempt is not the agent's to report on, or "".
func (c *Coordinator) notCurrent(conn *agentConn, ba *fleet.BuildAttempt) string {
	return c.leases.whyNotCurrent(ba.GetBuildId(), int(ba.GetAttempt()), conn.id)
}

func (c *Coordinator) heartbeat(ctx context.Context, conn *agentConn, hb *fleet.Heartbeat) error {
	free := Capacity{hb.GetFree().GetMilliCpus(), hb.GetFree().GetMemory()}
	c.agents.heartbeat(conn, free, attemptsOf(hb.GetRunning()), hb.GetDraining())
	expires := c.cfg.Now().Add(c.cfg.Lease)
	for _, ba := range hb.GetRunning() {
		if why := c.notCurrent(conn, ba); why != "" {
			conn.refuse(ba.GetBuildId(), ba.GetAttempt(), why)
			continue
		}
		if err := c.cfg.Store.Renew(ctx, ba.GetBuildId(), int(ba.GetAttempt()), expires); err != nil {
			if errors.Is(err, ErrStale) {
				conn.refuse(ba.GetBuildId(), ba.GetAttempt(), err.Error())
				continue
			}
			return status.Errorf(codes.Unavailable, "renewing a lease: %v", err)
		}
	}
	c.poke()
	return nil
}

func (c *Coordinator) event(ctx context.Context, conn *agentConn, be *fleet.BuildEvent) error {
	ba := be.GetBuild()
	if why := c.notCurrent(conn, ba); why != "" {
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), why)
		return nil
	}
	var e events.Event
	if err := json.Unmarshal(be.GetEvent(), &e); err != nil || be.GetSeq() < 1 {
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), fmt.Sprintf("event %d is malformed", be.GetSeq()))
		return nil
	}
	se := StoredEvent{BuildID: ba.GetBuildId(), Attempt: int(ba.GetAttempt()), Seq: be.GetSeq(), Event: e}
	stored, err := c.cfg.Store.AppendEvent(ctx, se)
	if err != nil {
		if errors.Is(err, ErrStale) || errors.Is(err, ErrNotFound) {
			// The attempt ended or moved on since the check above.
			conn.refuse(ba.GetBuildId(), ba.GetAttempt(), err.Error())
			return nil
		}
		return status.Errorf(codes.Unavailable, "storing an event: %v", err)
	}
	if stored { // not a resent one
		c.metrics.eventStored(e)
		c.noteEvent(se)
	}
	seq, err := c.storedThroughAfter(ctx, se.BuildID, se.Attempt, se.Seq)
	if err != nil {
		return status.Errorf(codes.Unavailable, "reading stored events: %v", err)
	}
	return c.ack(conn, &fleet.Ack{Build: ba, Seq: seq})
}

// storedThroughAfter returns how far an attempt's events are stored with
// none missing, now that seq is stored. In the common case (events stored
// in order by this process) the lease knows it; otherwise the store is
// read. What it returns is stored: never above the store's count.
func (c *Coordinator) storedThroughAfter(ctx context.Context, id string, attempt int, seq int64) (int64, error) {
	if through, known := c.leases.storedThroughAfter(id, attempt, seq); known {
		return through, nil
	}
	return c.readStoredThrough(ctx, id, attempt)
}

// readStoredThrough reads from the store how far an attempt's events are
// stored with none missing, and keeps it in the lease.
func (c *Coordinator) readStoredThrough(ctx context.Context, id string, attempt int) (int64, error) {
	through, err := c.cfg.Store.LastSeq(ctx, id, attempt)
	if err != nil {
		return 0, err
	}
	c.leases.raiseStoredThrough(id, attempt, through)
	return through, nil
}

func (c *Coordinator) logChunk(conn *agentConn, lc *fleet.LogChunk) error {
	ba := lc.GetBuild()
	if len(lc.GetData()) > MaxLogChunk {
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), fmt.Sprintf("a log chunk of %d bytes is larger than %d", len(lc.GetData()), MaxLogChunk))
		return nil
	}
	if why := c.notCurrent(conn, ba); why != "" {
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), why)
		return nil
	}
	key := LogKey{Build: ba.GetBuildId(), Attempt: int(ba.GetAttempt()), Job: lc.GetJob(), Stream: lc.GetStream()}
	size, err := c.logs.Write(key, lc.GetOffset(), lc.GetData())
	switch {
	case err == nil, errors.Is(err, logstore.ErrGap):
	case errors.Is(err, logstore.ErrInvalid), errors.Is(err, logstore.ErrTooLarge), errors.Is(err, logstore.ErrRemoved):
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), fmt.Sprintf("log chunk refused: %v", err))
		return nil
	default:
		// The store failed (a full disk, the database away): the agent
		// comes back and sends again from what was acknowledged.
		return status.Errorf(codes.Unavailable, "storing a log chunk: %v", err)
	}
	// On a gap the stored size tells the agent where to resend from.
	return c.ack(conn, &fleet.Ack{Build: ba, Logs: []*fleet.LogOffset{{Job: key.Job, Stream: key.Stream, Offset: size}}})
}

func (c *Coordinator) done(ctx context.Context, conn *agentConn, d *fleet.BuildDone) error {
	ba := d.GetBuild()
	if why := c.notCurrent(conn, ba); why != "" {
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), why)
		return nil
	}
	// What the lease counts is stored already; only when it falls short is
	// the store asked (it may know more).
	seq := c.leases.storedThrough(ba.GetBuildId(), int(ba.GetAttempt()))
	if seq < d.GetLastSeq() {
		var err error
		if seq, err = c.readStoredThrough(ctx, ba.GetBuildId(), int(ba.GetAttempt())); err != nil {
			return status.Errorf(codes.Unavailable, "reading stored events: %v", err)
		}
	}
	if seq < d.GetLastSeq() {
		// Not everything is stored yet: the agent resends from seq.
		return c.ack(conn, &fleet.Ack{Build: ba, Seq: seq})
	}
	result, message := events.Result(d.GetResult()), d.GetMessage()
	if needs := d.GetNeeds(); len(needs) > 0 {
		b, err := c.cfg.Store.GetBuild(ctx, ba.GetBuildId())
		if err != nil {
			return status.Errorf(codes.Unavailable, "reading a build handed back: %v", err)
		}
		why := refusedNeeds(b.Labels, needs)
		if why == "" {
			return c.handBack(ctx, conn, ba, b, needs, message, seq)
		}
		result, message = events.Error, why // it ends here, saying why
	}
	switch result {
	case events.Success, events.Failure, events.Error, events.Canceled:
	default:
		result = events.Error
	}
	// Where its status goes, read before the end is stored: a retry that
	// follows at once starts a lease of its own in place of this one.
	l, _ := c.leases.current(ba.GetBuildId())
	forge := l.forge
	if l.attempt != int(ba.GetAttempt()) {
		forge, l.canceled = nil, ""
	}
	if result == events.Canceled && l.canceled != "" {
		message = l.canceled
	}
	err := c.cfg.Store.Finish(ctx, ba.GetBuildId(), int(ba.GetAttempt()), result, message)
	if err != nil && !errors.Is(err, ErrStale) {
		return status.Errorf(codes.Unavailable, "ending the build: %v", err)
	}
	c.dispatcher.endLease(ba.GetBuildId(), int(ba.GetAttempt()))
	if err == nil {
		c.buildEnded(ba.GetBuildId(), forge, result, message)
	} else {
		c.notifyEnded(ba.GetBuildId())
	}
	c.poke()
	return c.ack(conn, &fleet.Ack{Build: ba, Seq: seq, Done: true})
}

// refusedNeeds says why a hand-back is refused, or "". What a build may
// ask of its agent this way is its jobs' architecture: the build file
// decides it, so it is taken as hostile input. It may add that label, never
// change one the build was queued with (by its trigger or repository).
func refusedNeeds(labels, needs map[string]string) string {
	for k, v := range needs {
		switch {
		case k != "arch" || v != pipeline.ArchAMD && v != pipeline.ArchARM:
			return fmt.Sprintf("its agent asked for an agent with %s=%s: only arch=amd or arch=arm can be asked for", k, v)
		case labels[k] != "" && labels[k] != v:
			return fmt.Sprintf("its jobs need %s=%s, and the build was queued for %s=%s", k, v, k, labels[k])
		}
	}
	return ""
}

// handBack queues a build again for an agent with the labels it turned out
// to need (its jobs' arch, say): the attempt that found it out ends here,
// and the build waits for such an agent, saying so.
func (c *Coordinator) handBack(ctx context.Context, conn *agentConn, ba *fleet.BuildAttempt, b Build, needs map[string]string, why string, seq int64) error {
	labels := maps.Clone(b.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, needs)
	reason := "needs an agent with " + formatLabels(needs)
	attempt := int(ba.GetAttempt())
	if err := c.cfg.Store.Handback(ctx, b.ID, attempt, reason, labels); err != nil {
		if errors.Is(err, ErrStale) {
			return c.ack(conn, &fleet.Ack{Build: ba, Seq: seq, Done: true})
		}
		return status.Errorf(codes.Unavailable, "handing back a build: %v", err)
	}
	c.log.Info("an agent handed a build back; queued again", "build", b.ID, "agent", conn.id, "needs", formatLabels(needs), "why", why)
	b.State, b.Agent, b.Labels, b.queuedAt = Queued, "", labels, c.cfg.Now()
	if b.AttemptReasons == nil {
		b.AttemptReasons = map[int]string{}
	}
	b.AttemptReasons[attempt+1] = reason
	c.dispatcher.handBack(&b, attempt)
	c.changed()
	c.logsEnded(b.ID)
	c.poke()
	return c.ack(conn, &fleet.Ack{Build: ba, Seq: seq, Done: true})
}

// decline puts back in the queue an assignment the agent will not run.
func (c *Coordinator) decline(ctx context.Context, conn *agentConn, d *fleet.Decline) error {
	ba := d.GetBuild()
	if why := c.notCurrent(conn, ba); why != "" {
		return nil // ended or moved on already
	}
	if err := c.cfg.Store.Requeue(ctx, ba.GetBuildId(), int(ba.GetAttempt()), ReasonDeclined); err != nil {
		if errors.Is(err, ErrStale) {
			return nil
		}
		return status.Errorf(codes.Unavailable, "requeueing a declined build: %v", err)
	}
	b, err := c.cfg.Store.GetBuild(ctx, ba.GetBuildId())
	if err != nil {
		return status.Errorf(codes.Unavailable, "reading a declined build: %v", err)
	}
	c.log.Info("agent declined a build; queued again", "build", b.ID, "agent", conn.id, "reason", d.GetReason())
	b.queuedAt = c.cfg.Now()
	c.dispatcher.handBack(&b, int(ba.GetAttempt()))
	c.changed()
	c.logsEnded(b.ID)
	c.poke()
	return nil
}
