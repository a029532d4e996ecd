package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/monkeyci/monkeyci/forge/status"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// dispatch sends queued builds, in turns between repositories (turns.go),
// to agents that have their labels and room for their script. A build that
// cannot go anywhere stays queued and says why; it does not hold back the
// builds behind it that can go elsewhere.
func (c *Coordinator) dispatch(ctx context.Context) {
	placed, newReasons := c.dispatcher.pass()
	// The store changes run side by side, so that the store commits them
	// together (group commit) rather than one commit each.
	concurrently(len(placed), func(i int) { c.assign(ctx, placed[i]) })
	c.recordWaiting(ctx, newReasons)
	if len(newReasons) > 0 {
		c.changed()
	}
}

// waitingSetter is a store that records one reason to wait for many
// builds in one change (pgstore): what a pass that finds no room says of
// a long queue.
type waitingSetter interface {
	SetWaitingMany(ctx context.Context, ids []string, why string) error
}

// recordWaiting stores why each build placed nowhere waits.
func (c *Coordinator) recordWaiting(ctx context.Context, ps []placement) {
	warn := func(err error) {
		if err != nil && !errors.Is(err, ErrStale) && !errors.Is(err, ErrNotLeader) {
			c.log.Warn("could not record why a build waits", "error", err)
		}
	}
	if many, ok := c.cfg.Store.(waitingSetter); ok && len(ps) > 1 {
		byWhy := map[string][]string{}
		for _, p := range ps {
			byWhy[p.why] = append(byWhy[p.why], p.build.ID)
		}
		for why, ids := range byWhy {
			warn(many.SetWaitingMany(ctx, ids, why))
		}
		return
	}
	concurrently(len(ps), func(i int) { warn(c.cfg.Store.SetWaiting(ctx, ps[i].build.ID, ps[i].why)) })
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

func (c *Coordinator) assign(ctx context.Context, p assignment) {
	b, attempt := p.build, p.build.Attempt+1
	expires := c.cfg.Now().Add(c.cfg.Lease)
	if err := c.cfg.Store.Assign(ctx, b.ID, attempt, p.conn.id, expires); err != nil {
		c.dispatcher.unplace(b, p.conn)
		if errors.Is(err, ErrStale) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrNotLeader) {
			// Ended or moved meanwhile (a cancel), or another coordinator
			// leads now: the store knows best.
			c.log.Info("build not dispatched", "build", b.ID, "reason", err)
			return
		}
		c.dispatcher.requeue(b)
		c.log.Error("could not assign a build; it stays queued", "build", b.ID, "error", err)
		return
	}
	b.Attempt, b.State, b.Agent, b.LeaseExpires = attempt, Running, p.conn.id, expires
	c.started(b, p.conn)
}

// started follows a build's new attempt, stored running on conn's agent,
// and sends it there.
func (c *Coordinator) started(b *Build, conn *agentConn) {
	// A new attempt has no events yet: none is stored, and that is known.
	ref := c.statuses.refOf(b)
	orphaned, restarted := c.dispatcher.startLease(b.ID, lease{attempt: b.Attempt, agent: conn.id, repo: b.Repo, forge: ref, started: c.cfg.Now()}, conn)
	switch {
	case orphaned: // its stream ended while the build was being sent
		time.AfterFunc(c.cfg.AgentGrace, func() { c.graceOver(conn) })
	case restarted: // and its agent is back without it
		go c.recover(conn.id, []attemptRef{{b.ID, b.Attempt}}, ReasonAgentRestarted)
	}
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
	// A fork's build is fetched as any other: the key goes to the fetch,
	// never to its jobs.
	key, err := c.deployKey(context.Background(), b.Repo)
	if err != nil {
		c.log.Error("could not read the repository's deploy key; not sent", "build", b.ID, "error", err)
		return
	}
	src := &fleet.Source{Url: url, Branch: b.Source.Branch, Commit: b.Source.Commit, Tag: b.Source.Tag, SshKey: key}
	if src.Depth, err = c.repoDepth(context.Background(), b.Repo); err != nil {
		c.log.Error("could not read the repository's settings; not sent", "build", b.ID, "error", err)
		return
	}
	c.statuses.note(ref, status.Running, fmt.Sprintf("running on %s (attempt %d)", conn.name, b.Attempt))
	conn.assign(b, src, secrets)
}

// needOn is the room a build takes on an agent when it is sent there: its
// script, and the first job's memory beside it; the job's CPU too when the
// agent does not pause scripts (else the waiting script lends it). Less,
// and two builds' scripts could hold what each other's jobs wait for.
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
