package docker

import (
	"context"
	"errors"
	"fmt"
	"maps"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/network"
)

// CreateNetwork makes a bridge network with the labels. The engine keeps
// containers of two such networks apart (its DOCKER-ISOLATION chains drop
// what one bridge forwards to another), and answers names on it: a
// container reaches another of the same network by its aliases. A network
// of that name that exists already is an error.
func (e *Engine) CreateNetwork(ctx context.Context, name string, labels map[string]string) error {
	if name == "" {
		return errors.New("create network: empty name")
	}
	opts := network.CreateOptions{Driver: "bridge", Labels: maps.Clone(labels)}
	if _, err := e.cli.NetworkCreate(ctx, name, opts); err != nil {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	return nil
}

// RemoveNetwork removes a network; one that is gone is not an error. A
// network a container still uses is an error: remove the container first.
func (e *Engine) RemoveNetwork(ctx context.Context, name string) error {
	if err := e.cli.NetworkRemove(ctx, name); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	return nil
}

// ListNetworks returns the names of the networks that carry all the labels
// (with those values). An empty label set is refused.
func (e *Engine) ListNetworks(ctx context.Context, labels map[string]string) ([]string, error) {
	f, err := labelFilters(labels)
	if err != nil {
		return nil, err
	}
	list, err := e.cli.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	names := make([]string, 0, len(list))
	for _, n := range list {
		names = append(names, n.Name)
	}
	return names, nil
}
