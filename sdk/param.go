package monkeyci

import (
	"context"
	"fmt"

	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// Params returns the build's parameters.
func (c *Client) Params(ctx context.Context) (map[string]string, error) {
	resp, err := c.api.GetParams(ctx, &jobapi.GetParamsRequest{})
	if err != nil {
		return nil, fmt.Errorf("reading the build's parameters: %w", apiError(err))
	}
	return resp.GetParams(), nil
}

// Param returns one build parameter and whether it is set.
func (c *Client) Param(ctx context.Context, key string) (string, bool, error) {
	params, err := c.Params(ctx)
	if err != nil {
		return "", false, err
	}
	v, ok := params[key]
	return v, ok, nil
}
