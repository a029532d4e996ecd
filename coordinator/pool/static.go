package pool

import (
	"context"
	"errors"
)

// Static is a pool of instances given by name (machines started by other
// means, each running `monkeyci agent --instance NAME`): the scaler shows
// them and their agents but never makes or destroys one.
type Static struct{ Names []string }

func (s Static) List(context.Context) ([]Instance, error) {
	out := make([]Instance, 0, len(s.Names))
	for _, n := range s.Names {
		out = append(out, Instance{ID: n, Phase: Running})
	}
	return out, nil
}

var errStatic = errors.New("a static pool has a fixed list of instances")

func (Static) Create(context.Context, int) ([]Instance, error) { return nil, errStatic }
func (Static) Destroy(context.Context, string) error           { return errStatic }
