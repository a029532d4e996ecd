package coordinator

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Several coordinators may share one database (package leader). One of
// them leads: it takes the agents' streams and runs what must run once
// (Run: dispatch, lease checks, forge statuses, the log archiver,
// retention). The others stand by: they serve the admin API, the
// dashboard and webhooks, whose every change goes to the database, and
// send agents to the leader. A coordinator alone (Config.Elected unset)
// leads from New on.

// LeaderTrailer is the trailer in which a standby that refuses an agent's
// stream names the leader's address.
const LeaderTrailer = "monkeyci-leader"

// adoptEvery is how often a leader looks in the store for builds other
// coordinators queued (a webhook or a trigger a standby answered).
const adoptEvery = 250 * time.Millisecond

// leadTerm is one time this coordinator leads: ended is closed when it
// stops, which ends the agents' streams.
type leadTerm struct{ ended chan struct{} }

// Leading says this coordinator leads now.
func (c *Coordinator) Leading() bool { return c.lead.Load() != nil }

// Lead leads until ctx ends: it takes up the queue and the running
// attempts as the store has them now, takes agents' streams and runs what
// a leader runs (Run). When it returns the agents' streams have been ended
// and this coordinator stands by again.
func (c *Coordinator) Lead(ctx context.Context) error {
	if err := c.adopt(ctx); err != nil {
		return err
	}
	t := &leadTerm{ended: make(chan struct{})}
	c.lead.Store(t)
	defer func() {
		c.lead.Store(nil)
		close(t.ended)
	}()
	c.log.Info("leading: agents connect here")
	go func() {
		tick := time.NewTicker(adoptEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if err := c.adopt(ctx); err != nil && ctx.Err() == nil {
					c.log.Warn("could not read the queue", "error", err)
				}
			}
		}
	}()
	return c.Run(ctx)
}

// adopt takes into this process's index what the store holds that it does
// not know: builds queued by another coordinator (or before this one
// led), and attempts another leader started.
func (c *Coordinator) adopt(ctx context.Context) error {
	queued, err := c.cfg.Store.Queued(ctx)
	if err != nil {
		return err
	}
	if c.dispatcher.adopt(queued, c.cfg.Now()) > 0 {
		c.changed()
		c.poke()
	}
	running, err := c.cfg.Store.Running(ctx)
	if err != nil {
		return err
	}
	for _, b := range running {
		if _, ok := c.leases.current(b.ID); ok {
			continue
		}
		c.leases.start(b.ID, lease{attempt: b.Attempt, agent: b.Agent, storedThrough: -1, forge: c.statuses.refOf(&b)})
		c.agents.load(b.Agent, b.ID, hold{b.Attempt, c.cfg.Script})
	}
	return nil
}

// standingBy refuses an agent's stream on a coordinator that does not
// lead, naming the leader when it is known.
func (c *Coordinator) standingBy(ctx context.Context) error {
	addr := ""
	if c.cfg.LeaderAddr != nil {
		addr = c.cfg.LeaderAddr()
	}
	if addr == "" {
		return status.Error(codes.Unavailable, "this coordinator stands by and no leader is known yet: try again, or another coordinator")
	}
	_ = grpc.SetTrailer(ctx, metadata.Pairs(LeaderTrailer, addr))
	return status.Errorf(codes.Unavailable, "this coordinator stands by: the leader is at %s", addr)
}
