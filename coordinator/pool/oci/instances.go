package oci

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/core"

	"github.com/monkeyci/monkeyci/coordinator/pool"
)

// List returns the pool's instances that are not terminated.
func (p *Provider) List(ctx context.Context) ([]pool.Instance, error) {
	id, err := p.pool()
	if err != nil {
		return nil, err
	}
	return p.list(ctx, id)
}

func (p *Provider) list(ctx context.Context, id string) ([]pool.Instance, error) {
	items, err := allPages(func(page *string) ([]core.InstanceSummary, *string, error) {
		resp, err := p.client.ListInstancePoolInstances(ctx, core.ListInstancePoolInstancesRequest{
			CompartmentId:  &p.cfg.CompartmentID,
			InstancePoolId: &id,
			Page:           page,
		})
		return resp.Items, resp.OpcNextPage, err
	})
	if err != nil {
		return nil, fmt.Errorf("oci: listing the instances of the pool %s: %w", id, short(err))
	}
	out := make([]pool.Instance, 0, len(items))
	for _, it := range items {
		phase, alive := phaseOf(deref(it.State))
		if it.Id == nil || !alive {
			continue
		}
		var created time.Time
		if it.TimeCreated != nil {
			created = it.TimeCreated.Time
		}
		out = append(out, pool.Instance{ID: *it.Id, Phase: phase, Created: created})
	}
	return out, nil
}

// phaseOf maps an instance's lifecycle state to its phase; alive is false
// once it is terminated. The API spells these "Running" in summaries and "RUNNING"
// elsewhere, so case does not matter.
func phaseOf(s string) (phase pool.Phase, alive bool) {
	switch strings.ToUpper(s) {
	case "TERMINATED":
		return "", false
	case "RUNNING", "MOVING", "CREATING_IMAGE":
		return pool.Running, true
	case "STOPPING", "STOPPED", "TERMINATING":
		return pool.Stopping, true
	default: // PROVISIONING, STARTING, and any state OCI adds later
		return pool.Starting, true
	}
}

// Create grows the pool by n and waits (up to Config.CreateTimeout) for the
// new instances to be listed. It returns those that showed up, possibly
// fewer than n: the scaler sees the rest on a later List.
func (p *Provider) Create(ctx context.Context, n int) ([]pool.Instance, error) {
	if n <= 0 {
		return nil, nil
	}
	id, err := p.pool()
	if err != nil {
		return nil, err
	}
	before, err := p.grow(ctx, id, n)
	if err != nil {
		return nil, err
	}
	return p.waitForNew(ctx, id, before, n)
}

// grow raises the pool's size by n and returns the ids listed just before.
// The update carries the etag of the read (If-Match), so a concurrent
// writer makes OCI answer 412 rather than one of the two updates being
// lost; then grow reads again and retries once.
func (p *Provider) grow(ctx context.Context, id string, n int) (map[string]bool, error) {
	for attempt := 1; ; attempt++ {
		got, err := p.client.GetInstancePool(ctx, core.GetInstancePoolRequest{InstancePoolId: &id})
		if err != nil {
			return nil, fmt.Errorf("oci: reading the instance pool %s: %w", id, short(err))
		}
		// Listed after the read: anything OCI launched for an older size is
		// then not taken for one of ours.
		listed, err := p.list(ctx, id)
		if err != nil {
			return nil, err
		}
		size := deref(got.Size)
		_, err = p.client.UpdateInstancePool(ctx, core.UpdateInstancePoolRequest{
			InstancePoolId:            &id,
			IfMatch:                   got.Etag,
			UpdateInstancePoolDetails: core.UpdateInstancePoolDetails{Size: common.Int(size + n)},
		})
		if err == nil {
			before := make(map[string]bool, len(listed))
			for _, in := range listed {
				before[in.ID] = true
			}
			return before, nil
		}
		if hasStatus(err, http.StatusPreconditionFailed) && attempt < 2 {
			continue // someone else changed the pool since our read
		}
		return nil, fmt.Errorf("oci: resizing the instance pool %s from %d to %d: %w", id, size, size+n, short(err))
	}
}

// waitForNew lists the pool until n instances not in before show up, the
// timeout passes (not an error), or ctx ends (an error).
func (p *Provider) waitForNew(ctx context.Context, id string, before map[string]bool, n int) ([]pool.Instance, error) {
	timeout := time.NewTimer(p.cfg.CreateTimeout)
	defer timeout.Stop()
	tick := time.NewTicker(p.cfg.PollInterval)
	defer tick.Stop()
	for {
		all, err := p.list(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("oci: the pool %s grew by %d, but: %w", id, n, err)
		}
		var fresh []pool.Instance
		for _, in := range all {
			if !before[in.ID] {
				fresh = append(fresh, in)
			}
		}
		if len(fresh) >= n {
			return fresh, nil
		}
		select {
		case <-timeout.C:
			return fresh, nil
		case <-tick.C:
		case <-ctx.Done():
		}
		// Checked after any wake-up, as select picks at random among ready
		// cases: the SDK must not get a dead context (it races on one).
		if err := ctx.Err(); err != nil {
			return fresh, fmt.Errorf("oci: waiting for %d new instances in the pool %s: %w", n, id, err)
		}
	}
}

// Destroy detaches the instance from the pool, lowering the size by one
// and terminating it. Lowering the size alone would let OCI choose which
// instance dies. An instance OCI does not know (404) is already gone.
func (p *Provider) Destroy(ctx context.Context, instanceID string) error {
	id, err := p.pool()
	if err != nil {
		return err
	}
	_, err = p.client.DetachInstancePoolInstance(ctx, core.DetachInstancePoolInstanceRequest{
		InstancePoolId: &id,
		DetachInstancePoolInstanceDetails: core.DetachInstancePoolInstanceDetails{
			InstanceId:      &instanceID,
			IsDecrementSize: common.Bool(true),
			IsAutoTerminate: common.Bool(true),
		},
	})
	if err != nil && !hasStatus(err, http.StatusNotFound) {
		return fmt.Errorf("oci: detaching the instance %s from the pool %s: %w", instanceID, id, short(err))
	}
	return nil
}
