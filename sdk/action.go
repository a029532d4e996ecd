package monkeyci

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// Action runs fn in this process as a job of the build named id: the build
// shows its start, end and output (what fn writes to stdout and stderr)
// like any job's, and its result counts in the build's. The script is not
// frozen while fn runs. Deps are waited for first; when one did not
// succeed, the action is skipped and fn is not called.
//
// fn's error decides the result: nil is success; an error with an exit
// code (an *exec.ExitError, or anything with ExitCode() int) is a failure
// with that code; any other error is a failure with exit code 1.
func (c *Client) Action(ctx context.Context, id string, deps []string, fn func(ctx context.Context, stdout, stderr io.Writer) error) (Result, error) {
	if len(deps) > 0 {
		res, err := c.Wait(ctx, deps...)
		if err != nil {
			return Result{}, err
		}
		for _, r := range res {
			if !r.OK() {
				reason := events.SkipReason(r.ID, events.Result(r.State))
				if err := c.Skip(ctx, id, reason); err != nil {
					return Result{}, err
				}
				return Result{ID: id, State: Skipped, Message: reason}, nil
			}
		}
	}
	if _, err := c.api.BeginAction(ctx, &jobapi.BeginActionRequest{Id: id, Deps: deps}); err != nil {
		return Result{}, fmt.Errorf("beginning action %s: %w", id, apiError(err))
	}
	err := fn(ctx, &Output{c: c, ctx: ctx, id: id, stream: "out"}, &Output{c: c, ctx: ctx, id: id, stream: "err"})
	exit, msg := exitOf(err)
	// Ended even when ctx was canceled: the build must not wait for it.
	resp, eerr := c.api.EndAction(context.WithoutCancel(ctx), &jobapi.EndActionRequest{Id: id, Exit: int32(exit), Message: msg})
	if eerr != nil {
		return Result{}, fmt.Errorf("ending action %s: %w", id, apiError(eerr))
	}
	return resultFromProto(resp.GetResult()), nil
}

// Output is an io.Writer that reports what is written as an action's
// output. Each Write is one call to the agent.
type Output struct {
	c      *Client
	ctx    context.Context
	id     string
	stream string
}

func (o *Output) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	_, err := o.c.api.ActionOutput(context.WithoutCancel(o.ctx), &jobapi.ActionOutputRequest{Id: o.id, Stream: o.stream, Data: p})
	if err != nil {
		return 0, fmt.Errorf("action %s output: %w", o.id, apiError(err))
	}
	return len(p), nil
}

// exitOf maps an action's error to an exit code and a message.
func exitOf(err error) (int, string) {
	if err == nil {
		return 0, ""
	}
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		code := coded.ExitCode()
		if code > 0 {
			return code, fmt.Sprintf("exited with code %d", code)
		}
	}
	return 1, err.Error()
}
