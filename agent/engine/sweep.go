package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// LabelAgent marks everything an agent makes on the engine with the
// agent's id, so that what a killed agent left can always be found.
const LabelAgent = "io.monkeyci.agent"

// SweepAgent removes the containers, volumes and networks labelled as made
// by the agent agentID, and returns how many: what a killed agent left behind.
// The agent itself does it at start; the docker pool, when it destroys
// an agent's instance.
func SweepAgent(ctx context.Context, rt Runtime, agentID string) (int, error) {
	// A request the killed agent had in flight may still make a container
	// after the first look (its volume then is "in use"): look again, a few
	// times, before giving up.
	var n int
	var err error
	for try := 0; try < 5; try++ {
		var swept int
		swept, err = sweepOnce(ctx, rt, agentID)
		n += swept
		if err == nil {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return n, err
		case <-time.After(time.Duration(try+1) * 200 * time.Millisecond):
		}
	}
	return n, err
}

func sweepOnce(ctx context.Context, rt Runtime, agentID string) (int, error) {
	labels := map[string]string{LabelAgent: agentID}
	ids, err := rt.ListContainers(ctx, labels)
	if err != nil {
		return 0, fmt.Errorf("listing leftover containers: %w", err)
	}
	// Side by side: a killed agent's restart waits for them before it
	// joins, and a running or frozen container takes a while to go.
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = rt.Remove(ctx, id)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, fmt.Errorf("removing leftover containers: %w", err)
	}
	vols, err := rt.ListVolumes(ctx, labels)
	if err != nil {
		return len(ids), fmt.Errorf("listing leftover volumes: %w", err)
	}
	for _, v := range vols {
		if err := rt.RemoveVolume(ctx, v); err != nil {
			return len(ids), fmt.Errorf("removing leftover volume: %w", err)
		}
	}
	nets, err := SweepNetworks(ctx, rt, labels)
	return len(ids) + len(vols) + nets, err
}

// SweepNetworks removes the networks that carry the labels (after their
// containers: a network in use cannot go).
func SweepNetworks(ctx context.Context, rt Runtime, labels map[string]string) (int, error) {
	nets, err := rt.ListNetworks(ctx, labels)
	if err != nil {
		return 0, fmt.Errorf("listing leftover networks: %w", err)
	}
	for i, n := range nets {
		if err := rt.RemoveNetwork(ctx, n); err != nil {
			return i, fmt.Errorf("removing leftover network: %w", err)
		}
	}
	return len(nets), nil
}
