package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/events"
)

// pauser freezes a build's script container while every job-API call the
// script has outstanding is an await (on running jobs, or on a person's
// unblock) and no action runs (action.go), and hands the script's CPU
// reservation to jobs meanwhile. It owns the script's reservation in the
// ledger: hold takes it, close gives back exactly what is still held.
//
// A job's image is checked and its container made while the script may
// still be running: freezing the script meanwhile would compete with those
// engine calls, on the job's critical path. So a pause also waits until no
// job of the build is between its capacity grant and its container being
// made; the container's start then waits for the freeze (jobStarted), so
// a script that keeps burning CPU while it waits (a heavy runtime's
// threads) burns only through the create. Jobs still waiting for capacity
// do not hold it back: they are what the script's CPU is for.
//
// Contract: a pause is only started by an await that begins, or by the end
// of a call or of a job's start; the container is unpaused before any await
// is answered (also at once) and whenever another call arrives. A script
// that got an answer works on it until its next await, even with another
// await still outstanding (the declarative driver awaits jobs and an
// unblock side by side, and calls one off when the other answers): it is
// not frozen again meanwhile. Engine calls are
// serialised, and a pause re-checks the counts after taking the engine lock,
// so a pause that lost a race with an answer never freezes the script after
// the answer. After close nothing is paused again.
type pauser struct {
	rt      Runtime
	id      string // the script container
	enabled bool
	ledger  *Ledger
	script  Resources // the script's reservation; its CPU is lent while paused
	emit    func(events.Event)
	// fail ends the build: a script that cannot be thawed would never hear
	// its answers.
	fail func(error)
	log  hclog.Logger

	mu        sync.Mutex // guards the counts
	awaits    int        // awaits outstanding on running jobs or unblocks
	others    int        // any other call outstanding
	actions   int        // actions running: the script works between its calls
	starting  int        // jobs between their capacity grant and their container made
	answered  bool       // an await was answered, and the script has not awaited since
	requested time.Time  // when a pause was last wanted

	engine      sync.Mutex // serialises pause and unpause; guards the rest
	held        Resources  // what the script holds in the ledger now
	lent        bool       // its CPU is lent to jobs
	frozen      bool       // the container is paused
	closed      bool
	pausedAt    time.Time
	pausedTotal time.Duration
	pauses      int
}

// jobFreezeWait bounds how long a job's start waits for the script's
// freeze (jobStarted).
const jobFreezeWait = time.Second

// unpauseTries bounds the retries of a failing unpause before the build is
// failed instead.
const unpauseTries = 5

// hold takes the script's reservation, waiting for capacity.
func (p *pauser) hold(ctx context.Context) error {
	if err := p.ledger.Acquire(ctx, p.script); err != nil {
		return err
	}
	p.engine.Lock()
	p.held = p.script
	p.engine.Unlock()
	return nil
}

// close thaws the script if needed, stops all later pauses and gives back
// what the script still holds.
func (p *pauser) close(ctx context.Context) {
	p.resume(ctx)
	p.engine.Lock()
	defer p.engine.Unlock()
	p.closed = true
	p.ledger.Release(p.held)
	p.held = Resources{}
}

// callBegin notes a non-await call, and unpauses if the script is frozen
// (its bytes were on the wire when the pause began).
func (p *pauser) callBegin(ctx context.Context) {
	p.mu.Lock()
	p.others++
	p.mu.Unlock()
	p.resume(ctx)
}

// callEnd notes the end of a non-await call; awaits left alone may pause.
func (p *pauser) callEnd() { p.change(func() { p.others-- }) }

// awaitBegin notes an await (on jobs or an unblock) and starts a pause if
// it is now the only kind of call outstanding. It does not wait for the
// pause. The script waits again: what it was answered is worked on.
func (p *pauser) awaitBegin() {
	p.change(func() {
		p.awaits++
		p.answered = false
	})
}

// awaitEnd is called before an await is answered: it makes sure the
// script runs again before the answer is sent.
func (p *pauser) awaitEnd(ctx context.Context) {
	p.mu.Lock()
	p.awaits--
	p.mu.Unlock()
	p.answer(ctx)
}

// answer is called before any answer to an await is sent, also one given
// at once (it never counted): the script must run to read it, and works on
// it until its next await, whatever else it awaits meanwhile.
func (p *pauser) answer(ctx context.Context) {
	p.mu.Lock()
	p.answered = true
	p.mu.Unlock()
	p.resume(ctx)
}

// awaitOver ends an await that ctx ended before any answer. Ended by its
// deadline, the error is an answer like any other. Called off by the
// script (canceled), the script ran when it called it off, and may since
// have been frozen again by its next await, which the late end of this
// one must not undo: it thaws only if no pause is wanted any more.
func (p *pauser) awaitOver(ctx context.Context) {
	if !errors.Is(ctx.Err(), context.Canceled) {
		p.awaitEnd(ctx)
		return
	}
	p.mu.Lock()
	p.awaits--
	keep := p.shouldPauseLocked()
	p.mu.Unlock()
	if !keep {
		p.resume(ctx)
	}
}

// actionBegin notes an action begun by a call still outstanding (which
// keeps the script thawed meanwhile).
func (p *pauser) actionBegin() {
	p.mu.Lock()
	p.actions++
	p.mu.Unlock()
}

// actionEnd notes an action's end; awaits left alone may pause.
func (p *pauser) actionEnd() { p.change(func() { p.actions-- }) }

// jobStarting notes a job whose container is being made.
func (p *pauser) jobStarting() {
	p.mu.Lock()
	p.starting++
	p.mu.Unlock()
}

// jobStarted notes that a job's container is made (or could not be). A
// pause it makes wanted is made before it returns, so before the job's
// container starts: side by side in the engine, the freeze and the start
// slow each other down (the freeze took 15 ms against 12 alone). It waits
// at most jobFreezeWait: a job must not wait on an engine fault.
func (p *pauser) jobStarted() {
	if !p.update(func() { p.starting-- }) {
		return
	}
	frozen := make(chan struct{})
	go func() {
		defer close(frozen)
		p.pause()
	}()
	select {
	case <-frozen:
	case <-time.After(jobFreezeWait):
	}
}

// change applies f to the counts and starts a pause if one is now wanted.
func (p *pauser) change(f func()) {
	if p.update(f) {
		go p.pause()
	}
}

// update applies f to the counts and says whether a pause is now wanted.
func (p *pauser) update(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	f()
	want := p.shouldPauseLocked()
	if want {
		p.requested = time.Now()
	}
	return want
}

func (p *pauser) shouldPauseLocked() bool {
	return p.enabled && p.awaits > 0 && p.others == 0 && p.actions == 0 && p.starting == 0 && !p.answered
}

func (p *pauser) pause() {
	p.engine.Lock()
	defer p.engine.Unlock()
	p.mu.Lock()
	want, requested := p.shouldPauseLocked(), p.requested
	p.mu.Unlock()
	if !want || p.lent || p.closed {
		return
	}
	// Not cut short by a request's context: it is the engine's state we
	// change, and resume always follows.
	err := p.rt.Pause(context.Background(), p.id)
	p.frozen = err == nil
	// The script only waits, so its CPU is lent to jobs even when it could
	// not be frozen: a job that needs it must not wait for an engine fault.
	p.lent = true
	p.ledger.Release(Resources{MilliCPUs: p.script.MilliCPUs})
	p.held.MilliCPUs -= p.script.MilliCPUs
	if err != nil {
		p.log.Warn("could not pause the script container; its CPU is lent to jobs all the same", "error", err)
		return
	}
	p.pausedAt = time.Now()
	p.pauses++
	// Duration is how long freezing took from the moment it was wanted.
	p.emit(events.Event{Type: events.ScriptPaused, Time: p.pausedAt, Duration: p.pausedAt.Sub(requested)})
}

func (p *pauser) resume(ctx context.Context) {
	p.engine.Lock()
	defer p.engine.Unlock()
	if !p.lent {
		return
	}
	// The script takes its CPU back at once, ahead of queued jobs: it is
	// what the finished job's dependents wait on.
	p.ledger.Force(Resources{MilliCPUs: p.script.MilliCPUs})
	p.held.MilliCPUs += p.script.MilliCPUs
	p.lent = false
	if !p.frozen {
		return
	}
	if err := p.unpause(context.WithoutCancel(ctx)); err != nil {
		p.log.Error("could not unpause the script container", "error", err)
		p.fail(fmt.Errorf("the script container could not be unpaused: %w", err))
		return
	}
	now := time.Now()
	d := now.Sub(p.pausedAt)
	p.frozen = false
	p.pausedTotal += d
	p.emit(events.Event{Type: events.ScriptResumed, Time: now, Duration: d})
}

// unpause retries a failing unpause a few times: a busy engine may refuse
// one call, and a script left frozen hangs its build.
func (p *pauser) unpause(ctx context.Context) error {
	var err error
	for try, wait := 0, 50*time.Millisecond; try < unpauseTries; try, wait = try+1, wait*2 {
		if err = p.rt.Unpause(ctx, p.id); err == nil {
			return nil
		}
		if try < unpauseTries-1 {
			time.Sleep(wait)
		}
	}
	return err
}

// stats returns how often and how long the script was paused.
func (p *pauser) stats() (int, time.Duration) {
	p.engine.Lock()
	defer p.engine.Unlock()
	return p.pauses, p.pausedTotal
}

// isPaused reports whether the script container is frozen now.
func (p *pauser) isPaused() bool {
	p.engine.Lock()
	defer p.engine.Unlock()
	return p.frozen
}
