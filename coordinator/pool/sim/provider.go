package sim

import (
	"context"
	"fmt"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/pool"
)

// clock is the simulated time every part of the world reads.
type clock struct{ now time.Time }

// instance is one simulated compute instance. Its agent joins the fleet
// once it has booted.
type instance struct {
	id        string
	created   time.Time
	booted    time.Time // when its agent joins
	destroyed time.Time // zero while it lives
	agent     *agent    // once joined
}

// provider makes instances that boot for a set time; an instance costs
// from its Create to its Destroy.
type provider struct {
	clock     *clock
	boot      time.Duration
	instances []*instance // every one made, in creation order
	// gone hears a destroyed instance, so the fleet drops its agent.
	gone func(*instance)
}

func (p *provider) List(context.Context) ([]pool.Instance, error) {
	var out []pool.Instance
	for _, in := range p.alive() {
		phase := pool.Running
		if in.agent == nil {
			phase = pool.Starting
		}
		out = append(out, pool.Instance{ID: in.id, Phase: phase, Created: in.created})
	}
	return out, nil
}

func (p *provider) Create(_ context.Context, n int) ([]pool.Instance, error) {
	var made []pool.Instance
	for range n {
		in := &instance{id: fmt.Sprintf("i-%03d", len(p.instances)+1), created: p.clock.now, booted: p.clock.now.Add(p.boot)}
		p.instances = append(p.instances, in)
		made = append(made, pool.Instance{ID: in.id, Phase: pool.Starting, Created: in.created})
	}
	return made, nil
}

// Destroy fails for an instance it does not have: a scaler that destroys
// one twice has lost track, and the run says so.
func (p *provider) Destroy(_ context.Context, id string) error {
	for _, in := range p.alive() {
		if in.id == id {
			in.destroyed = p.clock.now
			p.gone(in)
			return nil
		}
	}
	return fmt.Errorf("no instance %s", id)
}

func (p *provider) alive() []*instance {
	var out []*instance
	for _, in := range p.instances {
		if in.destroyed.IsZero() {
			out = append(out, in)
		}
	}
	return out
}

// hours is the instance-hours used up to now.
func (p *provider) hours() float64 {
	var total time.Duration
	for _, in := range p.instances {
		end := in.destroyed
		if end.IsZero() {
			end = p.clock.now
		}
		total += end.Sub(in.created)
	}
	return total.Hours()
}
