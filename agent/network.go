package agent

import (
	"context"
	"fmt"
)

// A network per build. Its job containers join it under their ids as
// names (the script has no network: it speaks to the agent through its
// socket), so a job reaches another job of its build by
// that name (a service job, say). The engine keeps two such networks apart
// (its DOCKER-ISOLATION chains drop what one bridge forwards to another), so
// no container of one build reaches a container of another build, of this
// agent or another one on the engine, by name or by address. The engine's
// default bridge, which every container not told otherwise joins, puts them
// all side by side.

// roleNetwork is a build network's io.monkeyci.role.
const roleNetwork = "network"

// network is the name of the build's network.
func (b *build) network() string { return "monkeyci-" + b.spec.ID + "-network" }

// makeNetwork creates the build's network. One of that name left by an
// earlier run of the build whose cleanup never came (a kill -9 of an agent
// that did not come back under the same id to sweep) is removed first,
// unless a container still uses it.
func (b *build) makeNetwork(ctx context.Context) error {
	rt, name, labels := b.r.cfg.Runtime, b.network(), b.labelsFor(roleNetwork, "")
	err := rt.CreateNetwork(ctx, name, labels)
	if err == nil {
		return nil
	}
	if rerr := rt.RemoveNetwork(ctx, name); rerr == nil {
		err = rt.CreateNetwork(ctx, name, labels)
	}
	if err != nil {
		return fmt.Errorf("the build's network: %w", err)
	}
	return nil
}
