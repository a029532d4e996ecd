package dockerpool

import (
	"context"
	"fmt"

	"github.com/monkeyci/monkeyci/coordinator/pool"
)

// List returns the pool's containers in any state. One whose agent has
// exited is listed as Stopping until Destroy removes it: it is not gone,
// and its folder is still on the host.
func (p *Provider) List(ctx context.Context) ([]pool.Instance, error) {
	list, err := p.cfg.Engine.Containers(ctx, map[string]string{LabelPool: p.cfg.Pool})
	if err != nil {
		return nil, fmt.Errorf("docker pool %s: list containers: %w", p.cfg.Pool, err)
	}
	out := make([]pool.Instance, 0, len(list))
	for _, c := range list {
		out = append(out, pool.Instance{ID: c.Name, Phase: phaseOf(c.State), Created: c.Created})
	}
	return out, nil
}

// phaseOf maps the engine's state to the instance's phase.
func phaseOf(state string) pool.Phase {
	switch state {
	case "running", "paused":
		return pool.Running
	case "created", "restarting":
		return pool.Starting
	default: // exited, dead, removing
		return pool.Stopping
	}
}
