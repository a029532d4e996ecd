package coordinator

import (
	"fmt"
	"sync"
	"time"
)

// lease is a running attempt of a build as this process tracks it.
type lease struct {
	attempt int
	agent   string
	repo    string // the build's, for its repository's limit
	// storedThrough says events 1..storedThrough of the attempt are stored,
	// none missing, as this process saw them stored: never more than the
	// store's own count (LastSeq). -1: unknown (an attempt loaded at
	// start).
	storedThrough int64
	// storedPastGap: an event after a missing one was stored, so the store
	// may count further than storedThrough; from then on it is asked.
	storedPastGap bool
	// forge is where the build's commit status goes (nil: nowhere).
	forge *statusRef
	// paused: the script is paused now, as the event of seq pausedBy said
	// (a later seq wins, so events that arrive out of order do not undo a
	// newer one).
	paused   bool
	pausedBy int64
	// started is when the attempt was sent, for the build's timeout.
	started time.Time
	// canceled is why the coordinator canceled the attempt ("": it did
	// not, or a person did): its end says so, whatever its agent's
	// message.
	canceled string
}

// leaseTable is the running attempts, by build id: which attempt is
// current and on which agent (what agents' reports are fenced by), and
// how far each attempt's events are stored. It takes no other lock.
type leaseTable struct {
	mu      sync.Mutex
	running map[string]*lease
	byRepo  map[string]int // how many run, by repository
}

func newLeaseTable() *leaseTable {
	return &leaseTable{running: map[string]*lease{}, byRepo: map[string]int{}}
}

// forget drops every lease: a coordinator that begins to lead takes them
// up again from the store (leadership.go).
func (t *leaseTable) forget() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.running)
	clear(t.byRepo)
}

// start makes l the build's current attempt. It returns the lease it
// replaced, if any (one not ended as it should have been).
func (t *leaseTable) start(id string, l lease) (replaced lease, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.running[id]
	t.running[id] = &l
	t.byRepo[l.repo]++
	if !had {
		return lease{}, false
	}
	t.forgetRepo(old.repo)
	return *old, true
}

// end forgets the build's lease if attempt is its current one, and
// returns it; another attempt's is left alone.
func (t *leaseTable) end(id string, attempt int) (lease, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.running[id]
	if !ok || l.attempt != attempt {
		return lease{}, false
	}
	delete(t.running, id)
	t.forgetRepo(l.repo)
	return *l, true
}

// forgetRepo counts one build of repo fewer.
func (t *leaseTable) forgetRepo(repo string) {
	if t.byRepo[repo]--; t.byRepo[repo] <= 0 {
		delete(t.byRepo, repo)
	}
}

// runningOf is how many builds of repo run.
func (t *leaseTable) runningOf(repo string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byRepo[repo]
}

// current returns the build's lease, if it runs.
func (t *leaseTable) current(id string) (lease, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.running[id]
	if !ok {
		return lease{}, false
	}
	return *l, true
}

// whyNotCurrent says why an attempt is not agent's to report on, or "".
func (t *leaseTable) whyNotCurrent(id string, attempt int, agent string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.running[id]
	switch {
	case !ok:
		return fmt.Sprintf("build %s is not running (unknown, ended, or sent back to the queue)", id)
	case l.attempt != attempt:
		return fmt.Sprintf("attempt %d of build %s is stale: the current attempt is %d", attempt, id, l.attempt)
	case l.agent != agent:
		return fmt.Sprintf("build %s runs on another agent", id)
	}
	return ""
}

// count is how many builds run.
func (t *leaseTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.running)
}

// storedThroughAfter says how far an attempt's events are stored with
// none missing, now that event seq is stored, when the lease knows it
// (events stored in order by this process: the common case). known is
// false when only the store can tell.
func (t *leaseTable) storedThroughAfter(id string, attempt int, seq int64) (through int64, known bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.running[id]
	if !ok || l.attempt != attempt || l.storedThrough < 0 || l.storedPastGap {
		return 0, false
	}
	switch {
	case seq == l.storedThrough+1:
		l.storedThrough = seq
		return seq, true
	case seq <= l.storedThrough:
		return l.storedThrough, true
	}
	l.storedPastGap = true // the store walks the count over the gap
	return 0, false
}

// storedThrough is the lease's count of an attempt's events stored with
// none missing; -1 when unknown.
func (t *leaseTable) storedThrough(id string, attempt int) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.running[id]; ok && l.attempt == attempt {
		return l.storedThrough
	}
	return -1
}

// raiseStoredThrough keeps the store's count of an attempt's events
// stored with none missing, when it is more than the lease knew.
func (t *leaseTable) raiseStoredThrough(id string, attempt int, through int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.running[id]; ok && l.attempt == attempt && through > l.storedThrough {
		l.storedThrough = through
	}
}

// noteCanceled records why the build's running attempt is canceled.
func (t *leaseTable) noteCanceled(id string, attempt int, why string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.running[id]; ok && l.attempt == attempt {
		l.canceled = why
	}
}

// runningSince are the running attempts: those the coordinator canceled
// (to tell their agents again), and when each other one started.
func (t *leaseTable) runningSince() (canceled, others []runningAttempt) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, l := range t.running {
		a := runningAttempt{id, l.attempt, l.agent, l.repo, l.started}
		if l.canceled != "" {
			canceled = append(canceled, a)
		} else {
			others = append(others, a)
		}
	}
	return canceled, others
}

// runningAttempt is a running attempt as timeouts see it.
type runningAttempt struct {
	build   string
	attempt int
	agent   string
	repo    string
	started time.Time // zero: unknown
}

// notePause keeps whether an attempt's script is paused, as its event of
// seq says.
func (t *leaseTable) notePause(id string, attempt int, seq int64, paused bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if l, ok := t.running[id]; ok && l.attempt == attempt && seq > l.pausedBy {
		l.paused, l.pausedBy = paused, seq
	}
}

// pausedAmong counts the builds of ids whose script is paused now.
func (t *leaseTable) pausedAmong(ids []string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, id := range ids {
		if l, ok := t.running[id]; ok && l.paused {
			n++
		}
	}
	return n
}
