package docker

import (
	"context"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
)

// Inspect is for tests that check what the engine made of a spec.
func (e *Engine) Inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	return e.cli.ContainerInspect(ctx, id)
}

// RemoveImage is for tests that import images.
func (e *Engine) RemoveImage(ctx context.Context, ref string) error {
	_, err := e.cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
	return err
}

// InspectImage is for tests that import images.
func (e *Engine) InspectImage(ctx context.Context, ref string) (image.InspectResponse, error) {
	return e.cli.ImageInspect(ctx, ref)
}
