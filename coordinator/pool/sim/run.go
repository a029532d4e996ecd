package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/events"
)

// Options are the simulated world and the scaler's settings: what
// `monkeyci pool simulate` takes as flags.
type Options struct {
	// Boot is how long an instance takes from its Create to its agent
	// joining.
	Boot time.Duration
	// Pause: a waiting script lends its CPU to its job, so a build needs
	// 1 CPU, not 2 (its script and its job).
	Pause     bool
	AgentCPUs int
	// The scaler's settings (pool.Config).
	Min, Max, Idle int
	IdleTimeout    time.Duration
	JoinTimeout    time.Duration
	// Step is how often the scaler steps.
	Step time.Duration
	// Overhead is what a build takes beyond its jobs: the clone, the
	// script's start.
	Overhead time.Duration
	// Span is the simulated day: instance-hours count over it, or up to
	// the last build's end if later (0: up to the last build's end).
	Span time.Duration
}

// DefaultOptions are the flags' defaults: pausing, a warm pool of one
// 2-CPU agent, instances that boot in 90 s.
func DefaultOptions() Options {
	return Options{
		Boot:        90 * time.Second,
		Pause:       true,
		AgentCPUs:   2,
		Min:         0,
		Max:         10,
		Idle:        1,
		IdleTimeout: pool.DefaultIdleTimeout,
		JoinTimeout: pool.DefaultJoinTimeout,
		Step:        10 * time.Second,
		Overhead:    5 * time.Second,
		Span:        24 * time.Hour,
	}
}

// BuildsPerAgent is how many builds an agent of these options carries.
func (o Options) BuildsPerAgent() int {
	need := 2 // its script and its job
	if o.Pause {
		need = 1 // the one that runs
	}
	return o.AgentCPUs / need
}

func (o Options) validate() error {
	switch {
	case o.Boot < 0:
		return errors.New("--boot must be 0 or more")
	case o.AgentCPUs < 1:
		return errors.New("--agent-cpus must be at least 1")
	case o.BuildsPerAgent() < 1:
		return fmt.Errorf("--agent-cpus %d fits no build without pausing: a build needs 2 CPUs, its script's and its job's", o.AgentCPUs)
	case o.Step <= 0:
		return errors.New("the scaler's step must be positive")
	case o.Overhead < 0:
		return errors.New("the per-build overhead must be 0 or more")
	}
	join := o.JoinTimeout
	if join <= 0 {
		join = pool.DefaultJoinTimeout // what the scaler makes of it
	}
	if o.Boot >= join {
		return fmt.Errorf("--boot %s is not below the join timeout %s: every instance would be destroyed before its agent joins", o.Boot, join)
	}
	return nil
}

// start is the simulated day's midnight; any date would do.
var start = time.Date(2025, 3, 4, 0, 0, 0, 0, time.UTC)

// stuck bounds a run whose builds cannot finish after the span.
const stuck = 7 * 24 * time.Hour

// Run replays the trace through the real pool.Scaler, stepped every
// opts.Step, with the pool starting empty at the day's start.
func Run(trace Trace, opts Options) (Result, error) {
	if err := opts.validate(); err != nil {
		return Result{}, err
	}
	w := newWorld(trace, opts)
	res := Result{Builds: len(trace.Builds), BuildsPerAgent: opts.BuildsPerAgent()}
	cfg := pool.Config{
		Min: opts.Min, Max: opts.Max, Idle: opts.Idle,
		IdleTimeout:    opts.IdleTimeout,
		JoinTimeout:    opts.JoinTimeout,
		BuildsPerAgent: opts.BuildsPerAgent(),
		// pool.Config leaves a zero cooldown at zero; scale-ups get the
		// coordinator's default, scale-ins none (the idle timeout spaces
		// them).
		UpCooldown: pool.DefaultUpCooldown,
		Decided:    res.count,
	}
	ctx := context.Background()
	scaler, err := pool.NewScaler(ctx, cfg, w.provider, w.fleet, &store{})
	if err != nil {
		return Result{}, err
	}
	end, nextStep := start.Add(opts.Span), start
	for {
		w.settle()
		if w.done() && !w.clock.now.Before(end) {
			break
		}
		if w.clock.now.Sub(end) > stuck {
			return Result{}, fmt.Errorf("%d builds of %d not done %s after the day's end", len(w.runs)-w.fleet.finished, len(w.runs), stuck)
		}
		if !w.clock.now.Before(nextStep) {
			if err := scaler.Step(ctx, w.clock.now); err != nil {
				return Result{}, fmt.Errorf("step at %s: %w", w.clock.now.Sub(start), err)
			}
			nextStep = nextStep.Add(opts.Step)
			w.fleet.dispatch() // builds of a destroyed instance, if any
			res.PeakInstances = max(res.PeakInstances, len(w.provider.alive()))
		}
		w.clock.now = w.next(nextStep)
	}
	res.finish(w)
	return res, nil
}

// count tallies the scaler's decisions.
func (r *Result) count(d pool.Decision) {
	switch d.Type {
	case events.PoolScaleUp:
		r.ScaleUps++
		r.Created += len(d.Instances)
	case events.PoolScaleIn:
		r.ScaleIns++
	case events.PoolDestroy:
		r.Destroys++
	}
}

// world is the simulated provider and coordinator on one clock, and the
// trace's builds in arrival order.
type world struct {
	clock    *clock
	provider *provider
	fleet    *fleet
	runs     []*run
	arrived  int // runs[:arrived] have been queued
}

func newWorld(trace Trace, opts Options) *world {
	c := &clock{now: start}
	f := &fleet{clock: c, slots: opts.BuildsPerAgent()}
	w := &world{clock: c, fleet: f, provider: &provider{clock: c, boot: opts.Boot, gone: f.leave}}
	builds := slices.Clone(trace.Builds)
	slices.SortStableFunc(builds, func(a, b Build) int { return cmp.Compare(a.Arrival, b.Arrival) })
	for _, b := range builds {
		w.runs = append(w.runs, &run{build: b, length: b.length(opts.Overhead), arrived: start.Add(b.Arrival)})
	}
	return w
}

// length is how long the build holds its slot.
func (b Build) length(overhead time.Duration) time.Duration {
	d := overhead
	for _, j := range b.Jobs {
		d += j
	}
	return d
}

// settle does all that is due now: builds end, booted agents join, new
// builds queue, and queued builds go to agents with room.
func (w *world) settle() {
	w.fleet.finish()
	for _, in := range w.provider.alive() {
		if in.agent == nil && !in.booted.After(w.clock.now) {
			w.fleet.join(in)
		}
	}
	for w.arrived < len(w.runs) && !w.runs[w.arrived].arrived.After(w.clock.now) {
		w.fleet.queue = append(w.fleet.queue, w.runs[w.arrived])
		w.arrived++
	}
	w.fleet.dispatch()
}

// next is the time of the next thing to happen: an arrival, a build's
// end, a boot, or the scaler's next step.
func (w *world) next(step time.Time) time.Time {
	t := step
	if w.arrived < len(w.runs) {
		t = earliest(t, w.runs[w.arrived].arrived)
	}
	for _, a := range w.fleet.agents {
		for _, r := range a.builds {
			t = earliest(t, r.ends)
		}
	}
	for _, in := range w.provider.alive() {
		if in.agent == nil {
			t = earliest(t, in.booted)
		}
	}
	return t
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (w *world) done() bool { return w.fleet.finished == len(w.runs) }
