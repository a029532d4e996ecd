package coordinator

import "context"

// Build returns a build as stored.
func (c *Coordinator) Build(ctx context.Context, id string) (Build, error) {
	return c.cfg.Store.GetBuild(ctx, id)
}
