package docker

import (
	"context"

	"github.com/docker/docker/api/types/image"
)

// RemoveImage is for tests that import images.
func (e *Engine) RemoveImage(ctx context.Context, ref string) error {
	_, err := e.cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
	return err
}

// InspectImage is for tests that import images.
func (e *Engine) InspectImage(ctx context.Context, ref string) (image.InspectResponse, error) {
	return e.cli.ImageInspect(ctx, ref)
}
