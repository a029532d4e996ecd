package coordinator

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/proto/fleet"
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
	// What this process knew (from a time it led before, or from its
	// start) may be stale: the store's view is taken up whole.
	c.dispatcher.forget()
	c.entries.forget()
	c.leases.forget()
	c.agents.forgetHolds()
	if err := c.adopt(ctx, 0); err != nil {
		return err
	}
	if err := c.adoptRunning(ctx); err != nil {
		return err
	}
	t := &leadTerm{ended: make(chan struct{})}
	c.lead.Store(t)
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		// At once when leading ends: agents' streams end and no build is
		// placed, while what ran finishes.
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		c.lead.CompareAndSwap(t, nil)
		close(t.ended)
	}()
	c.log.Info("leading: agents connect here")
	go func() {
		n := 0
		every(ctx, adoptEvery, func() bool {
			n++
			if err := c.adopt(ctx, n); err != nil && ctx.Err() == nil {
				c.log.Warn("could not read the queue", "error", err)
			}
			return true
		})
	}()
	return c.Run(ctx)
}

// adoptAllEvery is how many adoptions of the new entries (queueFeed) go
// between two reads of the whole queue, which find whatever those missed.
const adoptAllEvery = 40

// adopt takes into this process's index the builds queued in the store
// that it does not know: queued by another coordinator, or before this one
// led. n counts the calls of one time leading: the first, and every
// adoptAllEvery-th, reads the whole queue.
func (c *Coordinator) adopt(ctx context.Context, n int) error {
	var queued []Build
	var err error
	if feed, ok := c.cfg.Store.(queueFeed); ok {
		var mark int64
		var missing, numbers []int64
		if n%adoptAllEvery != 0 {
			mark, missing = c.entries.next(c.cfg.Now())
		}
		if queued, numbers, err = feed.QueuedSince(ctx, mark, missing); err == nil {
			c.entries.saw(numbers, c.cfg.Now())
		}
	} else {
		queued, err = c.cfg.Store.Queued(ctx)
	}
	if err != nil {
		return err
	}
	adopted := c.dispatcher.adopt(queued, c.cfg.Now())
	if n%adoptAllEvery == 0 && c.cfg.Elected {
		// Another coordinator may have changed a repository's limits.
		if err := c.refreshRepos(ctx); err != nil {
			c.log.Warn("could not read the repositories' limits; the last known ones hold", "error", err)
		}
	}
	if len(adopted) > 0 {
		c.changed()
		c.poke()
	}
	for _, b := range adopted {
		// Commit statuses are the leader's to send, in order: a standby
		// that queued the build did not.
		c.statuses.queued(b)
	}
	return nil
}

// adoptRunning takes into this process's index the attempts another
// leader started (only a leader starts one: once, as it begins to lead).
func (c *Coordinator) adoptRunning(ctx context.Context) error {
	running, err := c.cfg.Store.Running(ctx)
	if err != nil {
		return err
	}
	for _, b := range running {
		if _, ok := c.leases.current(b.ID); ok {
			continue
		}
		c.leases.start(b.ID, lease{attempt: b.Attempt, agent: b.Agent, repo: b.Repo, started: b.Started, storedThrough: -1, forge: c.statuses.refOf(&b)})
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

// onLeader runs call against the leader's admin API: what only the leader
// can do (its agents' streams, its queue and leases) is asked of it by a
// standby on its caller's behalf.
func (c *Coordinator) onLeader(ctx context.Context, call func(context.Context, fleet.AdminClient) error) error {
	if md, _ := metadata.FromIncomingContext(ctx); len(md.Get(forwardedKey)) > 0 {
		// Sent here as to the leader, which this one no longer is: no
		// further (two coordinators could send it to each other).
		return status.Error(codes.Unavailable, "this coordinator no longer leads: try again")
	}
	if c.cfg.LeaderAdmin == nil {
		return status.Error(codes.Unavailable, "this coordinator stands by, and cannot reach the leader")
	}
	api, err := c.cfg.LeaderAdmin(ctx)
	if err != nil {
		return status.Errorf(codes.Unavailable, "this coordinator stands by, and cannot reach the leader: %v", err)
	}
	return call(metadata.AppendToOutgoingContext(ctx, forwardedKey, "1"), api)
}

// forwardedKey marks a call a standby sent on to the leader.
const forwardedKey = "monkeyci-forwarded"

// forward is onLeader for an admin call that returns a response.
func forward[R any](ctx context.Context, c *Coordinator, call func(context.Context, fleet.AdminClient) (R, error)) (R, error) {
	var r R
	err := c.onLeader(ctx, func(ctx context.Context, api fleet.AdminClient) error {
		var err error
		r, err = call(ctx, api)
		return err
	})
	return r, err
}

// standbyLooks is how often a standby looks again at what the leader
// changes, for those who wait on it here: a build's end, the dashboard's
// pages.
const standbyLooks = 500 * time.Millisecond

// watchStandby wakes, every standbyLooks while this coordinator stands
// by, whoever waits here for a change another coordinator makes in the
// store (it tells only its own waiters of its own). It runs until ctx ends.
func (c *Coordinator) watchStandby(ctx context.Context) {
	every(ctx, standbyLooks, func() bool {
		if !c.Leading() {
			c.changed()
		}
		return true
	})
}

// pollEnd tells the watchers of a build's end (endWatchers) when the
// store says it has ended, for a standby, whose own index never sees the
// leader end it; it returns then, or when ctx ends.
func (c *Coordinator) pollEnd(ctx context.Context, id string) {
	every(ctx, standbyLooks, func() bool {
		// Read even when leading: this coordinator may have begun to lead
		// after the old leader ended the build, which its index never held.
		if b, err := c.cfg.Store.GetBuild(ctx, id); err == nil && b.State == Ended {
			c.notifyEnded(id)
			return false
		}
		return true
	})
}

// ListCoordinators lists the coordinators sharing the store, the leader
// marked; a coordinator alone is the one leader.
func (s *AdminServer) ListCoordinators(ctx context.Context, _ *fleet.ListCoordinatorsRequest) (*fleet.ListCoordinatorsResponse, error) {
	c := s.c
	if c.cfg.Members == nil { // a coordinator made without a server
		return &fleet.ListCoordinatorsResponse{Coordinators: []*fleet.CoordinatorInfo{{Leader: true, Self: true}}}, nil
	}
	ms, err := c.cfg.Members(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	resp := &fleet.ListCoordinatorsResponse{}
	for _, m := range ms {
		info := &fleet.CoordinatorInfo{Id: m.ID, Grpc: m.GRPC, Http: m.HTTP, Version: m.Version, Leader: m.Leader, Term: m.Term,
			Started: timestamppb.New(m.Started), Seen: timestamppb.New(m.Seen), Self: m.ID == c.cfg.Self, Gone: m.Gone}
		resp.Coordinators = append(resp.Coordinators, info)
	}
	return resp, nil
}
