package agent

import (
	"context"
	"fmt"
	"os"
)

// The script containers' network. A script needs none: it speaks to the
// agent through its socket. But a namespace of its own, even an empty one
// (--network none), costs every script container's start about 260 ms on
// the engine (682 ms against 372 ms for `docker run` here). So an agent's
// scripts all join one namespace that has nothing but a loopback
// interface, held by an idle container: as cut off from the network as
// none, and no namespace made per build.

// roleNetwork is the network holder's io.monkeyci.role.
const roleNetwork = "network"

func (r *Runner) networkHolder() string { return "monkeyci-" + r.cfg.AgentID + "-network" }

// ensureNetwork starts the network holder unless it runs already, and
// returns the network mode that joins it. Callers hold imageMu.
func (r *Runner) ensureNetwork(ctx context.Context, image string) (string, error) {
	rt, name := r.cfg.Runtime, r.networkHolder()
	mode := "container:" + name
	if st, err := rt.State(ctx, name); err == nil && st == "running" {
		return mode, nil
	}
	_ = rt.Remove(ctx, name) // stopped, or left by an older binary: made again
	id, err := rt.Create(ctx, ContainerSpec{
		Name: name, Image: image, Cmd: []string{"hold"}, Network: "none",
		Labels:   map[string]string{LabelAgent: r.cfg.AgentID, LabelRole: roleNetwork},
		NanoCPUs: 1e8, Memory: 16 << 20,
	})
	if err != nil {
		// Another process of this agent id may have made it meanwhile.
		if st, serr := rt.State(ctx, name); serr == nil && st == "running" {
			return mode, nil
		}
		return "", fmt.Errorf("the scripts' network holder: %w", err)
	}
	if err := rt.Start(ctx, id); err != nil {
		return "", fmt.Errorf("starting the scripts' network holder: %w", err)
	}
	return mode, nil
}

// Close removes what the runner keeps between builds (the network
// holder). Call it once no build runs; a runner used after it makes it
// again.
func (r *Runner) Close(ctx context.Context) error {
	r.imageMu.Lock()
	defer r.imageMu.Unlock()
	_ = os.Remove(r.apiRoot()) // the builds' socket folders' parent: empty once none runs
	if err := r.cfg.Runtime.Remove(ctx, r.networkHolder()); err != nil {
		return fmt.Errorf("removing the scripts' network holder: %w", err)
	}
	return nil
}
