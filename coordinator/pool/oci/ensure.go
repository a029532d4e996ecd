package oci

import (
	"context"
	"fmt"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/core"
)

// Ensure makes sure the pool exists. With Config.InstancePoolID it only
// reads that pool. Without, it looks for the pool and its instance
// configuration by DisplayName in the compartment and makes what is
// missing, so a restarted coordinator finds what the last one made instead
// of making another pool. Call it once, before List, Create and Destroy.
func (p *Provider) Ensure(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()

	if p.cfg.InstancePoolID != "" {
		resp, err := p.client.GetInstancePool(ctx, core.GetInstancePoolRequest{InstancePoolId: &p.cfg.InstancePoolID})
		if err != nil {
			return fmt.Errorf("oci: reading the instance pool %s: %w", p.cfg.InstancePoolID, short(err))
		}
		if gone(resp.LifecycleState) {
			return fmt.Errorf("oci: the instance pool %s is %s", p.cfg.InstancePoolID, resp.LifecycleState)
		}
		// List asks for the pool's instances by compartment.
		if c := deref(resp.CompartmentId); c != p.cfg.CompartmentID {
			return fmt.Errorf("oci: the instance pool %s is in the compartment %s, not %s", p.cfg.InstancePoolID, c, p.cfg.CompartmentID)
		}
		p.poolID = p.cfg.InstancePoolID
		return nil
	}

	id, err := p.findPool(ctx)
	if err != nil || id != "" {
		p.poolID = id
		return err
	}
	configID, err := p.findConfiguration(ctx)
	if err != nil {
		return err
	}
	if configID == "" {
		if configID, err = p.createConfiguration(ctx); err != nil {
			return err
		}
	}
	id, err = p.createPool(ctx, configID)
	p.poolID = id
	return err
}

// gone tells a pool on its way out, which must not be reused.
func gone(s core.InstancePoolLifecycleStateEnum) bool {
	return s == core.InstancePoolLifecycleStateTerminating || s == core.InstancePoolLifecycleStateTerminated
}

func (p *Provider) findPool(ctx context.Context) (string, error) {
	pools, err := allPages(func(page *string) ([]core.InstancePoolSummary, *string, error) {
		resp, err := p.client.ListInstancePools(ctx, core.ListInstancePoolsRequest{
			CompartmentId: &p.cfg.CompartmentID,
			DisplayName:   &p.cfg.DisplayName,
			Page:          page,
		})
		return resp.Items, resp.OpcNextPage, err
	})
	if err != nil {
		return "", fmt.Errorf("oci: looking for the instance pool %q: %w", p.cfg.DisplayName, short(err))
	}
	for _, s := range pools {
		if s.Id != nil && deref(s.DisplayName) == p.cfg.DisplayName &&
			!gone(core.InstancePoolLifecycleStateEnum(s.LifecycleState)) {
			return *s.Id, nil
		}
	}
	return "", nil
}

func (p *Provider) findConfiguration(ctx context.Context) (string, error) {
	// The API has no name filter for configurations: read them all.
	configs, err := allPages(func(page *string) ([]core.InstanceConfigurationSummary, *string, error) {
		resp, err := p.client.ListInstanceConfigurations(ctx, core.ListInstanceConfigurationsRequest{
			CompartmentId: &p.cfg.CompartmentID,
			Page:          page,
		})
		return resp.Items, resp.OpcNextPage, err
	})
	if err != nil {
		return "", fmt.Errorf("oci: looking for the instance configuration %q: %w", p.cfg.DisplayName, short(err))
	}
	for _, c := range configs {
		if c.Id != nil && deref(c.DisplayName) == p.cfg.DisplayName {
			return *c.Id, nil
		}
	}
	return "", nil
}

func (p *Provider) createConfiguration(ctx context.Context) (string, error) {
	c := p.cfg
	resp, err := p.client.CreateInstanceConfiguration(ctx, core.CreateInstanceConfigurationRequest{
		CreateInstanceConfiguration: core.CreateInstanceConfigurationDetails{
			CompartmentId: &c.CompartmentID,
			DisplayName:   &c.DisplayName,
			InstanceDetails: core.ComputeInstanceDetails{
				LaunchDetails: &core.InstanceConfigurationLaunchInstanceDetails{
					CompartmentId:      &c.CompartmentID,
					AvailabilityDomain: &c.AvailabilityDomain,
					Shape:              &c.Shape,
					ShapeConfig: &core.InstanceConfigurationLaunchInstanceShapeConfigDetails{
						Ocpus:       &c.OCPUs,
						MemoryInGBs: &c.MemoryGBs,
					},
					SourceDetails:     core.InstanceConfigurationInstanceSourceViaImageDetails{ImageId: &c.ImageID},
					CreateVnicDetails: &core.InstanceConfigurationCreateVnicDetails{SubnetId: &c.SubnetID},
					Metadata:          map[string]string{"user_data": c.UserData},
				},
			},
		},
	})
	if err != nil {
		return "", fmt.Errorf("oci: creating the instance configuration %q: %w", c.DisplayName, short(err))
	}
	return *resp.Id, nil
}

func (p *Provider) createPool(ctx context.Context, configID string) (string, error) {
	c := p.cfg
	resp, err := p.client.CreateInstancePool(ctx, core.CreateInstancePoolRequest{
		CreateInstancePoolDetails: core.CreateInstancePoolDetails{
			CompartmentId:           &c.CompartmentID,
			DisplayName:             &c.DisplayName,
			InstanceConfigurationId: &configID,
			Size:                    common.Int(0), // the scaler grows it
			PlacementConfigurations: []core.CreateInstancePoolPlacementConfigurationDetails{{
				AvailabilityDomain: &c.AvailabilityDomain,
				PrimaryVnicSubnets: &core.InstancePoolPlacementPrimarySubnet{SubnetId: &c.SubnetID},
			}},
		},
	})
	if err != nil {
		return "", fmt.Errorf("oci: creating the instance pool %q: %w", c.DisplayName, short(err))
	}
	return *resp.Id, nil
}

// deref reads an optional field of the SDK's models.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// allPages follows opc-next-page until the last page.
func allPages[T any](fetch func(page *string) ([]T, *string, error)) ([]T, error) {
	var all []T
	var page *string
	for {
		items, next, err := fetch(page)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == nil || *next == "" {
			return all, nil
		}
		page = next
	}
}
