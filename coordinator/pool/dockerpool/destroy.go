package dockerpool

import (
	"context"
	"fmt"
	"os"

	"github.com/monkeyci/monkeyci/agent/engine"
)

// Destroy stops the instance's agent (SIGTERM, which drains it, then
// SIGKILL after StopGrace), removes its container, whatever the agent left
// on the engine, and its folder. An id that is gone, or not of this pool,
// is not an error (nothing of another pool is touched). The call lasts up
// to StopGrace, so ctx must allow that.
func (p *Provider) Destroy(ctx context.Context, id string) error {
	if !p.owns(id) {
		p.cfg.Logger.Debug("not an instance of this pool; nothing to destroy", "id", id)
		return nil
	}
	if err := p.cfg.Engine.Stop(ctx, id, int(p.cfg.StopGrace.Seconds())); err != nil {
		return fmt.Errorf("docker pool %s: destroy %s: %w", p.cfg.Pool, id, err)
	}
	if err := p.remove(ctx, id); err != nil {
		return fmt.Errorf("docker pool %s: destroy %s: %w", p.cfg.Pool, id, err)
	}
	p.cfg.Logger.Info("agent container destroyed", "instance", id)
	return nil
}

// remove removes the instance's container, what its agent made and did
// not clean up (it does on a drain, not when killed: the scripts' network
// holder, a build's containers and volumes), and its folder, in that
// order: the folder is bind-mounted into those containers.
func (p *Provider) remove(ctx context.Context, id string) error {
	rt := p.cfg.Engine
	if err := rt.Remove(ctx, id); err != nil {
		return err
	}
	// The agent's name is the instance id, and it labels what it makes with it.
	if _, err := engine.SweepAgent(ctx, rt, id); err != nil {
		return fmt.Errorf("removing what the agent left: %w", err)
	}
	if err := os.RemoveAll(p.dir(id)); err != nil {
		return fmt.Errorf("removing the instance's folder: %w", err)
	}
	return nil
}
