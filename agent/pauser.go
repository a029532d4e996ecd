package agent

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/monkeyci/monkeyci/events"
)

// pauser freezes a build's script container while every job-API call the
// script has outstanding is an await on running jobs, and hands the script's
// CPU reservation to jobs meanwhile.
//
// A job's container is created and started while the script may still be
// running: freezing the script meanwhile would compete with that start on
// the engine, on the job's critical path, and frees CPU nobody needs (the
// starting job holds its own). So a pause also waits until no job of the
// build is between its capacity grant and its start. Jobs still waiting for
// capacity do not hold it back: they are what the script's CPU is for.
//
// Contract: a pause is only ever started by an await that begins, or by the
// last starting job's start; the container is unpaused before any await is answered and whenever another
// call arrives. Engine calls are serialised, and a pause re-checks the call
// counts after taking the engine lock, so a pause that lost a race with an
// answer never freezes the script after the answer.
type pauser struct {
	rt      Runtime
	id      string // the script container
	enabled bool
	ledger  *Ledger
	cpu     Resources // what the script gives up while paused (CPU only)
	emit    func(events.Event)
	log     hclog.Logger

	mu        sync.Mutex // guards the counts
	awaits    int        // awaits outstanding on running jobs
	others    int        // any other call outstanding
	starting  int        // jobs between their capacity grant and their start
	requested time.Time  // when a pause was last wanted

	engine      sync.Mutex // serialises pause and unpause; guards the rest
	paused      bool
	pausedAt    time.Time
	pausedTotal time.Duration
	pauses      int
}

// callBegin notes a non-await call, and unpauses if the script is frozen
// (its bytes were on the wire when the pause began).
func (p *pauser) callBegin(ctx context.Context) {
	p.mu.Lock()
	p.others++
	p.mu.Unlock()
	p.resume(ctx)
}

func (p *pauser) callEnd() {
	p.mu.Lock()
	p.others--
	p.mu.Unlock()
}

// awaitBegin notes an await on running jobs and starts a pause if it is now
// the only kind of call outstanding. It does not wait for the pause.
func (p *pauser) awaitBegin() {
	p.mu.Lock()
	p.awaits++
	want := p.shouldPauseLocked()
	if want {
		p.requested = time.Now()
	}
	p.mu.Unlock()
	if want {
		go p.pause()
	}
}

// awaitEnd is called before an await is answered: it makes sure the script
// runs again before the answer is sent.
func (p *pauser) awaitEnd(ctx context.Context) {
	p.mu.Lock()
	p.awaits--
	p.mu.Unlock()
	p.resume(ctx)
}

func (p *pauser) shouldPauseLocked() bool {
	return p.enabled && p.awaits > 0 && p.others == 0 && p.starting == 0
}

// jobStarting notes a job whose container is being made and started.
func (p *pauser) jobStarting() {
	p.mu.Lock()
	p.starting++
	p.mu.Unlock()
}

// jobStarted notes that a job's start call returned (or failed), and pauses
// the script if that was all it waited for.
func (p *pauser) jobStarted() {
	p.mu.Lock()
	p.starting--
	want := p.shouldPauseLocked()
	if want {
		p.requested = time.Now()
	}
	p.mu.Unlock()
	if want {
		go p.pause()
	}
}

func (p *pauser) pause() {
	p.engine.Lock()
	defer p.engine.Unlock()
	p.mu.Lock()
	want, requested := p.shouldPauseLocked(), p.requested
	p.mu.Unlock()
	if !want || p.paused {
		return
	}
	// The pause must not be cut short by a request's context: it is the
	// engine's state we change, and resume always follows.
	if err := p.rt.Pause(context.Background(), p.id); err != nil {
		p.log.Warn("could not pause the script container", "error", err)
		return
	}
	p.paused, p.pausedAt = true, time.Now()
	p.pauses++
	p.ledger.Release(p.cpu)
	// Duration is how long freezing took from the moment it was wanted.
	p.emit(events.Event{Type: events.ScriptPaused, Time: p.pausedAt, Duration: p.pausedAt.Sub(requested)})
}

func (p *pauser) resume(ctx context.Context) {
	p.engine.Lock()
	defer p.engine.Unlock()
	if !p.paused {
		return
	}
	// The script takes its CPU back at once, ahead of queued jobs: it is
	// what the finished job's dependents wait on.
	p.ledger.Force(p.cpu)
	if err := p.rt.Unpause(context.WithoutCancel(ctx), p.id); err != nil {
		p.log.Error("could not unpause the script container", "error", err)
		p.ledger.Release(p.cpu)
		return
	}
	now := time.Now()
	d := now.Sub(p.pausedAt)
	p.paused = false
	p.pausedTotal += d
	p.emit(events.Event{Type: events.ScriptResumed, Time: now, Duration: d})
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
	return p.paused
}
