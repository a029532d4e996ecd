package coordinator

import (
	"sort"
	"sync"
	"time"
)

// dispatcher keeps the queue, the builds waiting for an agent (an index of
// the store), and moves builds between it, the agents' room (the agent
// registry) and the leases (the lease table): placing them, starting,
// ending and dropping their leases, queueing them again.
//
// Lock order: the dispatcher's lock guards the queue; under it the
// registry's or the lease table's may be taken, never both at once, and
// neither takes another. Hand-back and decline end a lease and queue the
// build again in one step under the dispatcher's lock. Other moves are not
// one step: a dispatch takes a build out of the queue before its store
// write and starts its lease after; a recovery drops the lease before its
// store write and queues the build after; a trigger stores a build before
// it is queued. A cancel that falls in such a window finds the build
// neither queued nor leased and answers that it has ended, as it did
// under one mutex: the store, not this index, is the truth.
type dispatcher struct {
	agents *agentRegistry
	leases *leaseTable

	mu    sync.Mutex
	queue []*Build // in order of turns (turns.go), then of creation
	turns turns
	// The first unplaced queued builds found no agent when the agents'
	// rooms were at version unplacedAt: until they change, none can take
	// them, so a pass starts after them (a long queue with no room is not
	// walked at every new build).
	unplaced   int
	unplacedAt uint64

	// limits bound each repository's builds running at once (setLimits);
	// placing counts, by repository, the builds placed whose lease has not
	// started yet (their store write is under way): both count against a
	// limit.
	limits  map[string]int
	placing map[string]int
}

func newDispatcher(agents *agentRegistry, leases *leaseTable) *dispatcher {
	return &dispatcher{agents: agents, leases: leases}
}

// queued is how many builds wait.
func (d *dispatcher) queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.queue)
}

// placeNow places b, a new build, on an agent at once when no build waits
// before it and an agent has room: it returns the agent's connection (nil:
// b is to be queued).
func (d *dispatcher) placeNow(b *Build) *agentConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.queue) > 0 {
		return nil
	}
	if d.repoLimits().full(b.Repo) != "" {
		return nil
	}
	conn := d.agents.placeOne(b)
	if conn != nil {
		d.turns.give(b, d.queue)
		d.turns.served(b)
		d.placingOne(b.Repo)
	}
	return conn
}

// setLimits makes limits the repositories' bounds on their builds running
// at once (each above 0; absent: none).
func (d *dispatcher) setLimits(limits map[string]int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.limits = limits
	d.unplaced = 0 // a bound may have moved: each build is looked at again
}

// repoLimits are the limits for a pass, with what runs of each bounded
// repository now (nil: none is bounded). Under the dispatcher's lock.
func (d *dispatcher) repoLimits() *repoLimits {
	if len(d.limits) == 0 {
		return nil
	}
	l := &repoLimits{max: d.limits, active: make(map[string]int, len(d.limits))}
	for repo := range d.limits {
		l.active[repo] = d.leases.runningOf(repo) + d.placing[repo]
	}
	return l
}

// placingOne counts a build of repo placed, until its lease starts or it
// is not sent after all. Under the dispatcher's lock.
func (d *dispatcher) placingOne(repo string) {
	if d.placing == nil {
		d.placing = map[string]int{}
	}
	d.placing[repo]++
}

// placedOne counts a build of repo placed no longer: its lease started, or
// it was not sent.
func (d *dispatcher) placedOne(repo string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.placing[repo] <= 1 {
		delete(d.placing, repo)
		return
	}
	d.placing[repo]--
}

// unplace gives back what placing b on conn took, when it was not sent
// after all (its store write failed).
func (d *dispatcher) unplace(b *Build, conn *agentConn) {
	d.placedOne(b.Repo)
	d.agents.unplace(conn)
}

// add queues b, a new build, at its repository's next turn.
func (d *dispatcher) add(b *Build) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requeueLocked(b)
}

// forget empties the queue: a coordinator that begins to lead takes it up
// again from the store (leadership.go).
func (d *dispatcher) forget() {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.queue)
	d.queue, d.unplaced, d.unplacedAt = d.queue[:0], 0, 0
	d.turns.reset()
	clear(d.placing)
}

// adopt queues, in order of creation (each at its repository's next
// turn), those of builds (queued in the store) that are neither queued
// nor leased here, and returns them.
func (d *dispatcher) adopt(builds []Build, now time.Time) []*Build {
	d.mu.Lock()
	defer d.mu.Unlock()
	known := make(map[string]bool, len(d.queue))
	for _, b := range d.queue {
		known[b.ID] = true
	}
	var adopted []*Build
	for i := range builds {
		b := &builds[i]
		if known[b.ID] {
			continue
		}
		if _, leased := d.leases.current(b.ID); leased {
			continue
		}
		b.queuedAt = now
		d.requeueLocked(b)
		adopted = append(adopted, b)
	}
	return adopted
}

// requeue puts b back in the queue at its turn: a build sent back after
// its agent was lost keeps its place.
func (d *dispatcher) requeue(b *Build) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requeueLocked(b)
}

// requeueLocked puts b in the queue at its turn, giving it one if it has
// none.
func (d *dispatcher) requeueLocked(b *Build) {
	d.turns.give(b, d.queue)
	i := sort.Search(len(d.queue), func(i int) bool { return before(b, d.queue[i]) })
	d.queue = append(d.queue, nil)
	copy(d.queue[i+1:], d.queue[i:])
	d.queue[i] = b
	d.unplaced = min(d.unplaced, i)
}

// handBack ends b's attempt, handed back by its agent, and queues b again
// at once (see dispatcher).
func (d *dispatcher) handBack(b *Build, attempt int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.endLease(b.ID, attempt)
	d.requeueLocked(b)
}

// cancel takes a queued build out of the queue and returns it. Otherwise
// it returns the build's lease, if it runs (ok).
func (d *dispatcher) cancel(id string) (queued *Build, running lease, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, b := range d.queue {
		if b.ID == id {
			d.queue = append(d.queue[:i], d.queue[i+1:]...)
			if i < d.unplaced {
				d.unplaced--
			}
			if d.turns.withdrawn(b.Repo, d.queue) {
				sort.SliceStable(d.queue, func(i, j int) bool { return before(d.queue[i], d.queue[j]) })
				d.unplaced = 0 // builds moved up: each is looked at again
			}
			return b, lease{}, true
		}
	}
	running, ok = d.leases.current(id)
	return nil, running, ok
}

// pass places the queued builds, in order of turns, on agents (place): those
// placed leave the queue, to be assigned; those that cannot go anywhere
// stay, and those whose reason to wait changed are returned with it.
func (d *dispatcher) pass() (placed []assignment, newReasons []placement) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.queue) == 0 {
		return nil, nil
	}
	version := d.agents.roomVersion()
	if version != d.unplacedAt {
		d.unplaced = 0 // an agent changed: it may take them now
	}
	kept := d.queue[:d.unplaced]
	placed, waiting := d.agents.place(d.queue[d.unplaced:], d.repoLimits())
	for _, p := range placed {
		d.turns.served(p.build)
		d.placingOne(p.build.Repo)
	}
	for _, p := range waiting {
		kept = append(kept, p.build)
		if p.build.Waiting != p.why {
			p.build.Waiting = p.why
			newReasons = append(newReasons, p)
		}
	}
	clear(d.queue[len(kept):])
	d.queue = kept
	// Placing only took room: every build kept found none, and finds none
	// until an agent changes.
	d.unplaced, d.unplacedAt = len(kept), version
	return placed, newReasons
}

// startLease makes l, an attempt placed on conn, the build's current
// one: in the lease table, then as a hold on its agent (so that a
// reconnection in between does not take it for one lost). It says whether
// conn ended meanwhile with nothing else to wait for (orphaned), or its
// agent is back on another stream (restarted): see agentRegistry.leased.
func (d *dispatcher) startLease(id string, l lease, conn *agentConn) (orphaned, restarted bool) {
	if old, ok := d.leases.start(id, l); ok {
		d.agents.drop(old.agent, id, old.attempt)
	}
	// Counted as placed until counted as running: a limit never sees it
	// in neither.
	d.placedOne(l.repo)
	return d.agents.leased(conn, id, l.attempt)
}

// endLease forgets the lease of an attempt that ended or was handed back,
// gives its agent back the room it took, and returns it. A lease of
// another attempt (the build moved on meanwhile) is left alone.
func (d *dispatcher) endLease(id string, attempt int) (lease, bool) {
	l, ok := d.leases.end(id, attempt)
	if ok {
		d.agents.release(l.agent, id, attempt)
	}
	return l, ok
}

// dropLease forgets the lease of an attempt sent back to the queue, if it
// is the build's current one; its agent's room is what the agent says.
func (d *dispatcher) dropLease(id string, attempt int) {
	if l, ok := d.leases.end(id, attempt); ok {
		d.agents.drop(l.agent, id, attempt)
	}
}
