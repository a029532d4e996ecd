package coordinator

import (
	"context"
	"fmt"
)

// What the web dashboard (package coordinator/web) reads, beside the admin
// API: the same store and the same token check, without a gRPC hop.

// Builds lists the builds that match f, newest first, in one query.
func (c *Coordinator) Builds(ctx context.Context, f BuildFilter) ([]Build, error) {
	return c.cfg.Store.ListBuilds(ctx, f)
}

// Events returns a build's stored events, attempt by attempt.
func (c *Coordinator) Events(ctx context.Context, id string) ([]StoredEvent, error) {
	return c.cfg.Store.Events(ctx, id)
}

// EventMark is how far an attempt's events are stored with none missing:
// a cheap way to tell whether a build has new events.
func (c *Coordinator) EventMark(ctx context.Context, id string, attempt int) (int64, error) {
	if attempt < 1 {
		return 0, nil
	}
	return c.cfg.Store.LastSeq(ctx, id, attempt)
}

// Agents lists the agents ever seen (connected or not).
func (c *Coordinator) Agents(ctx context.Context) ([]Agent, error) {
	return c.cfg.Store.ListAgents(ctx)
}

// Agent returns one agent as stored.
func (c *Coordinator) Agent(ctx context.Context, id string) (Agent, error) {
	if id == "" { // a build not sent anywhere: no store read
		return Agent{}, fmt.Errorf("no agent: %w", ErrNotFound)
	}
	return c.cfg.Store.GetAgent(ctx, id)
}

// WatchEnd returns a channel closed when the build ends (at once if it
// has).
func (c *Coordinator) WatchEnd(ctx context.Context, id string) (<-chan struct{}, error) {
	return c.watchEnd(ctx, id)
}
