package coordinator

import "sort"

// turns share dispatch fairly between repositories (start-time fair
// queueing, each repository weighing the same). A build entering the
// queue gets its repository's next turn, never earlier than the turn
// being served (round); the queue is in order of turns, then of creation.
// A repository with 500 builds queued holds turns round+1 to round+500,
// and another's one build, queued meanwhile, gets round+1: it goes second,
// not 501st. Within a repository builds keep their order of arrival, and
// a build sent back to the queue keeps its turn.
//
// The dispatcher owns it, under its lock.
type turns struct {
	now  uint64
	last map[string]uint64 // by repository: the turn of its latest build queued
}

// round is the turn being served: the last one served, or, when builds
// were served past builds still queued (these wait for room or for labels
// while others go), the one before the lowest of those. queue is in queue
// order: by priority, then turn, so each priority's first build has its
// lowest turn.
func (t *turns) round(queue []*Build) uint64 {
	var lowest uint64
	for i := 0; i < len(queue); {
		b := queue[i]
		if b.turn > 0 && (lowest == 0 || b.turn < lowest) {
			lowest = b.turn
		}
		rest := queue[i:]
		i += sort.Search(len(rest), func(k int) bool { return rest[k].Priority < b.Priority })
	}
	if lowest > 0 && lowest-1 < t.now {
		return lowest - 1
	}
	return t.now
}

// give gives b, entering queue, its repository's next turn; a build that
// has one keeps it. A build sent back after an attempt (its agent was
// lost, or handed it back) had its turn: it goes first.
func (t *turns) give(b *Build, queue []*Build) {
	if b.turn != 0 {
		return
	}
	round := t.round(queue)
	if b.Attempt > 0 {
		b.turn = max(round, 1)
		return
	}
	if t.last == nil {
		t.last = map[string]uint64{}
	}
	b.turn = max(round, t.last[b.Repo]) + 1
	t.last[b.Repo] = b.turn
}

// served notes that b left the queue for an agent: later arrivals queue
// from its turn on.
func (t *turns) served(b *Build) { t.now = max(t.now, b.turn) }

// withdrawn notes that a build of repo left the queue without being
// served (canceled, superseded): the repository's builds still queued
// move up into the turns it no longer needs, as if it had never come, so
// that superseded builds cost it no turns. It says whether any moved (the
// queue is then to be sorted again).
func (t *turns) withdrawn(repo string, queue []*Build) (moved bool) {
	round := t.round(queue)
	next := round + 1
	var last uint64
	for _, b := range queue { // in order of turns: the repository's in theirs
		if b.Repo != repo || b.turn <= round {
			continue
		}
		if next < b.turn {
			b.turn, moved = next, true
		}
		last = b.turn
		next = b.turn + 1
	}
	switch {
	case last == 0:
		delete(t.last, repo)
	case t.last == nil:
		t.last = map[string]uint64{repo: last}
	default:
		t.last[repo] = last
	}
	return moved
}

// reset forgets every turn: the queue is taken up again from the store.
func (t *turns) reset() { t.now, t.last = 0, nil }

// before says whether a goes before b in the queue: by priority, then by
// turn, by creation, by id.
func before(a, b *Build) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if a.turn != b.turn {
		return a.turn < b.turn
	}
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return a.ID < b.ID
}
