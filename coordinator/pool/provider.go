// Package pool sizes the agent pool: a Provider makes and destroys compute
// instances, each running one agent, and the Scaler decides how many there
// should be from the queue and the agents the coordinator sees.
package pool

import (
	"context"
	"time"
)

// Provider makes and destroys the instances of one pool. Implementations:
// oci (an OCI instance pool), docker (agents as local containers) and
// static (a fixed list that never changes).
type Provider interface {
	// List returns every instance of the pool that is not yet gone.
	List(ctx context.Context) ([]Instance, error)
	// Create asks for n more instances and returns those it made (with
	// their ids; they may still be booting).
	Create(ctx context.Context, n int) ([]Instance, error)
	// Destroy removes one instance. The scaler only destroys an instance
	// whose agent is drained and holds no build, or that never joined.
	Destroy(ctx context.Context, id string) error
}

// Instance is one compute instance of the pool.
type Instance struct {
	// ID is the provider's id; the agent on it says it with --instance.
	ID      string
	Phase   Phase
	Created time.Time
}

// Phase is where an instance is in its life, as the provider sees it.
type Phase string

const (
	Starting Phase = "starting" // asked for, booting
	Running  Phase = "running"
	Stopping Phase = "stopping" // being destroyed
)
