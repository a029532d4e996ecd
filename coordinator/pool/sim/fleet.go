package sim

import (
	"fmt"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/pool"
)

// run is one build of the trace on its way through the world.
type run struct {
	build   Build
	length  time.Duration // its jobs and the per-build overhead
	arrived time.Time
	started time.Time // when last dispatched
	ends    time.Time
}

// agent is the agent of a booted instance.
type agent struct {
	id        string
	instance  *instance
	builds    []*run
	draining  bool
	idleSince time.Time // zero while it holds builds
}

// fleet is the coordinator as the scaler sees it: a FIFO queue of builds
// and the joined agents, each with slots builds' room.
type fleet struct {
	clock    *clock
	slots    int
	queue    []*run
	agents   []*agent // in join order
	finished int      // builds done
	// busyDestroyed counts instances destroyed under a build: the scaler
	// must never do it.
	busyDestroyed int
}

// join connects the agent of a booted instance; it is idle from now.
func (f *fleet) join(in *instance) {
	a := &agent{id: "agent-" + in.id, instance: in, idleSince: f.clock.now}
	in.agent = a
	f.agents = append(f.agents, a)
}

// leave drops the agent of a destroyed instance. Builds it held go back
// to the head of the queue, as the coordinator retries a lost attempt.
func (f *fleet) leave(in *instance) {
	a := in.agent
	if a == nil {
		return
	}
	if len(a.builds) > 0 {
		f.busyDestroyed++
		f.queue = append(append([]*run(nil), a.builds...), f.queue...)
	}
	for i, b := range f.agents {
		if b == a {
			f.agents = append(f.agents[:i], f.agents[i+1:]...)
			break
		}
	}
}

// finish ends the builds whose time is up.
func (f *fleet) finish() {
	for _, a := range f.agents {
		kept := a.builds[:0]
		for _, r := range a.builds {
			if r.ends.After(f.clock.now) {
				kept = append(kept, r)
				continue
			}
			f.finished++
		}
		a.builds = kept
		if len(a.builds) == 0 && a.idleSince.IsZero() {
			a.idleSince = f.clock.now
		}
	}
}

// dispatch sends queued builds, oldest first, each to the agent with the
// most free slots (the coordinator picks the one with the most free CPU),
// the earliest joined of equals.
func (f *fleet) dispatch() {
	for len(f.queue) > 0 {
		var best *agent
		for _, a := range f.agents {
			if !a.draining && len(a.builds) < f.slots && (best == nil || len(a.builds) < len(best.builds)) {
				best = a
			}
		}
		if best == nil {
			return // every build needs the same room: none behind fits either
		}
		r := f.queue[0]
		f.queue = f.queue[1:]
		r.started, r.ends = f.clock.now, f.clock.now.Add(r.length)
		best.builds = append(best.builds, r)
		best.idleSince = time.Time{}
	}
}

func (f *fleet) Demand() pool.Demand {
	d := pool.Demand{Queued: len(f.queue)}
	for _, a := range f.agents {
		d.Agents = append(d.Agents, pool.Agent{ID: a.id, Instance: a.instance.id, Builds: len(a.builds), Draining: a.draining, IdleSince: a.idleSince})
	}
	return d
}

func (f *fleet) Drain(id string) error {
	for _, a := range f.agents {
		if a.id == id {
			a.draining = true
			return nil
		}
	}
	return fmt.Errorf("no agent %s", id)
}
