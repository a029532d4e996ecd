package agent

import (
	"context"
	"fmt"
	"sync"
)

// Resources is an amount of CPU (in millicpus) and memory (in bytes).
type Resources struct {
	MilliCPUs int64
	Memory    int64
}

func (r Resources) String() string {
	return cpuWords(r.MilliCPUs) + " and " + FormatBytes(r.Memory)
}

func (r Resources) fitsIn(free Resources) bool {
	return r.MilliCPUs <= free.MilliCPUs && r.Memory <= free.Memory
}

// Ledger is an agent's capacity and what holds it. Requests are served first
// come, first served, so a large job is not starved by a stream of small ones.
// Force takes capacity even past the total: a script that is unpaused to hear
// its jobs' results must never wait behind the jobs it waits for.
// Safe for concurrent use.
type Ledger struct {
	mu      sync.Mutex
	total   Resources
	used    Resources
	waiters []*waiter
}

type waiter struct {
	need  Resources
	ready chan struct{}
}

// NewLedger returns a ledger of the given capacity.
func NewLedger(total Resources) *Ledger { return &Ledger{total: total} }

// Total is the ledger's capacity.
func (l *Ledger) Total() Resources { return l.total }

// Used is what is held now (it may exceed Total after Force).
func (l *Ledger) Used() Resources {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.used
}

// CanEverFit says why need can never be granted beside what keeps stays
// held (a waiting script's share), or nil.
func (l *Ledger) CanEverFit(need, keeps Resources) error {
	avail := Resources{l.total.MilliCPUs - keeps.MilliCPUs, l.total.Memory - keeps.Memory}
	if need.MilliCPUs > avail.MilliCPUs {
		return fmt.Errorf("needs %s but the agent has %s%s", cpuWords(need.MilliCPUs), cpuWords(l.total.MilliCPUs), besides(cpuWords(keeps.MilliCPUs), keeps.MilliCPUs))
	}
	if need.Memory > avail.Memory {
		return fmt.Errorf("needs %s of memory but the agent has %s%s", FormatBytes(need.Memory), FormatBytes(l.total.Memory), besides(FormatBytes(keeps.Memory), keeps.Memory))
	}
	return nil
}

func besides(what string, n int64) string {
	if n == 0 {
		return ""
	}
	return ", of which the build's script keeps " + what
}

// cpuWords says a number of CPUs in words.
func cpuWords(milli int64) string {
	if milli == 1000 {
		return "1 CPU"
	}
	return formatCPUs(milli) + " CPUs"
}

// Acquire blocks until need is granted or ctx ends.
func (l *Ledger) Acquire(ctx context.Context, need Resources) error {
	return l.AcquireOr(ctx, need, nil)
}

// AcquireOr is Acquire that first calls waits (if not nil) when need
// cannot be granted at once.
func (l *Ledger) AcquireOr(ctx context.Context, need Resources, waits func()) error {
	if err := l.CanEverFit(need, Resources{}); err != nil {
		return err
	}
	l.mu.Lock()
	if len(l.waiters) == 0 && need.fitsIn(l.freeLocked()) {
		l.add(need)
		l.mu.Unlock()
		return nil
	}
	w := &waiter{need: need, ready: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	if waits != nil {
		waits()
	}

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			l.releaseLocked(need)
		default:
			l.removeWaiter(w)
			l.grantLocked()
		}
		return context.Cause(ctx)
	}
}

// Force takes need at once, even past the total.
func (l *Ledger) Force(need Resources) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.add(need)
}

// Release gives back what Acquire or Force took.
func (l *Ledger) Release(r Resources) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked(r)
}

func (l *Ledger) releaseLocked(r Resources) {
	l.used.MilliCPUs -= r.MilliCPUs
	l.used.Memory -= r.Memory
	l.grantLocked()
}

func (l *Ledger) add(r Resources) {
	l.used.MilliCPUs += r.MilliCPUs
	l.used.Memory += r.Memory
}

func (l *Ledger) freeLocked() Resources {
	return Resources{l.total.MilliCPUs - l.used.MilliCPUs, l.total.Memory - l.used.Memory}
}

// grantLocked wakes waiters in order while the first one fits.
func (l *Ledger) grantLocked() {
	for len(l.waiters) > 0 && l.waiters[0].need.fitsIn(l.freeLocked()) {
		w := l.waiters[0]
		l.waiters = l.waiters[1:]
		l.add(w.need)
		close(w.ready)
	}
}

func (l *Ledger) removeWaiter(w *waiter) {
	for i, x := range l.waiters {
		if x == w {
			l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
			return
		}
	}
}
