package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/monkeyci/monkeyci/agent/engine"
)

// Create makes a container (not started) from spec and returns its id. When
// the image is absent the error wraps engine.ErrImageNotFound (call
// EnsureImage first). Volumes named in spec.Mounts must exist: the engine
// would make a missing one without labels.
func (e *Engine) Create(ctx context.Context, spec engine.ContainerSpec) (string, error) {
	cfg, host, err := toContainerConfig(spec)
	if err != nil {
		return "", err
	}
	net, err := toNetworkingConfig(spec)
	if err != nil {
		return "", err
	}
	resp, err := e.cli.ContainerCreate(ctx, cfg, host, net, nil, spec.Name)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			if ok, herr := e.HasImage(ctx, spec.Image); herr == nil && !ok {
				return "", fmt.Errorf("create container %s: image %s is not present locally: %w", spec.Name, spec.Image, errors.Join(engine.ErrImageNotFound, err))
			}
		}
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	for _, w := range resp.Warnings {
		e.log.Warn("engine warning on create", "container", shortID(resp.ID), "warning", w)
	}
	return resp.ID, nil
}

// Inspect returns all the engine says of a container: what it made of a
// spec (tests look at its confinement) and its addresses.
func (e *Engine) Inspect(ctx context.Context, id string) (container.InspectResponse, error) {
	resp, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		return resp, fmt.Errorf("inspect container %s: %w", shortID(id), err)
	}
	return resp, nil
}

// Address returns the container's IP address on the network, as the host
// reaches it: what a service's ports are probed at.
func (e *Engine) Address(ctx context.Context, id, network string) (string, error) {
	resp, err := e.Inspect(ctx, id)
	if err != nil {
		return "", err
	}
	if resp.NetworkSettings != nil {
		if n, ok := resp.NetworkSettings.Networks[network]; ok && n != nil && n.IPAddress != "" {
			return n.IPAddress, nil
		}
	}
	return "", fmt.Errorf("container %s has no address on network %s (has it started?)", shortID(id), network)
}

// CopyTo extracts the tar stream into dir, which must exist in the container
// (in its image or a mount). It works on a created container, so inputs can
// be in place before Start. Each call costs the engine about 60 ms.
func (e *Engine) CopyTo(ctx context.Context, id, dir string, tar io.Reader) error {
	if err := e.cli.CopyToContainer(ctx, id, dir, tar, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("copy into %s:%s: %w", shortID(id), dir, err)
	}
	return nil
}

// CopyFrom returns path inside the container as a tar stream whose root
// entry is path's base name. The caller closes it.
func (e *Engine) CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error) {
	rc, _, err := e.cli.CopyFromContainer(ctx, id, path)
	if cerrdefs.IsNotFound(err) {
		// The container exists (it was just created or ran): the path does not.
		return nil, fmt.Errorf("%w: %s", engine.ErrPathNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("copy from %s:%s: %w", shortID(id), path, err)
	}
	return rc, nil
}

// Start starts a created container.
func (e *Engine) Start(ctx context.Context, id string) error {
	err := e.cli.ContainerStart(ctx, id, container.StartOptions{})
	e.startReturned()
	if err != nil {
		return fmt.Errorf("start container %s: %w", shortID(id), err)
	}
	return nil
}

// startReturned wakes the Wait calls that wait on a created container.
func (e *Engine) startReturned() {
	e.mu.Lock()
	close(e.started)
	e.started = make(chan struct{})
	e.mu.Unlock()
}

func (e *Engine) startSignal() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.started
}

// createdRecheck is how often a Wait on a container that is still "created"
// looks at it again, in case it was started (and failed to start) by another
// client than this Engine, which Wait would not hear of otherwise.
const createdRecheck = 2 * time.Second

// Wait blocks until the container exits and returns its exit status. It may
// be called before or after Start, and returns at once for a container that
// has already exited.
//
// How it avoids races: it first registers a "next-exit" wait with the engine
// (the call returns only once the engine holds the waiter), then inspects
// the container. An exit after the inspection is seen by the waiter; one
// before it is seen by the inspection. ("not-running" cannot be used: it
// returns at once for a created container.)
//
// A start that fails leaves the container "created" with an error and an
// exit code (127 for a missing executable), and the engine reports no exit
// for it; Wait then returns that code with an error saying why it did not
// start. Wait hears of the failure from this Engine's Start at once, and of
// a start by another client within createdRecheck.
//
// When the waiter fires, the container is inspected again for OOMKilled and
// the final exit code. If the container is gone by then, the waiter's code is
// used; if it was removed before it ever ran, Wait returns an error.
func (e *Engine) Wait(ctx context.Context, id string) (engine.Exit, error) {
	wctx, cancel := context.WithCancel(ctx)
	resC, errC := e.cli.ContainerWait(wctx, id, container.WaitConditionNextExit)
	// The client's goroutine sends exactly one value, the result on an
	// unbuffered channel: when Wait returns without having taken it, someone
	// must, or that goroutine and its connection leak.
	consumed := false
	defer func() {
		cancel()
		if !consumed {
			go func() {
				select {
				case <-resC:
				case <-errC:
				}
			}()
		}
	}()
	select {
	case err := <-errC: // filled before ContainerWait returns when the request failed
		consumed = true
		return engine.Exit{}, fmt.Errorf("wait for container %s: %w", shortID(id), err)
	default:
	}

	var recheck <-chan time.Time
	for {
		started := e.startSignal()
		st, err := e.inspectState(ctx, id)
		if err != nil {
			return engine.Exit{}, fmt.Errorf("wait for container %s: %w", shortID(id), err)
		}
		switch {
		case st.Status == container.StateExited || st.Status == container.StateDead:
			return e.exit(ctx, id, st), nil
		case st.Status == container.StateCreated && st.Error != "":
			return engine.Exit{Code: st.ExitCode}, fmt.Errorf("container %s did not start: %s", shortID(id), st.Error)
		case st.Status == container.StateCreated:
			if recheck == nil {
				t := time.NewTicker(createdRecheck)
				defer t.Stop()
				recheck = t.C
			}
			select {
			case r := <-resC:
				consumed = true
				return e.waitResult(ctx, id, r, true)
			case err := <-errC:
				consumed = true
				return engine.Exit{}, e.waitError(ctx, id, err)
			case <-started:
			case <-recheck:
			case <-ctx.Done():
				return engine.Exit{}, ctx.Err()
			}
		default: // running, paused, restarting, removing
			select {
			case r := <-resC:
				consumed = true
				return e.waitResult(ctx, id, r, false)
			case err := <-errC:
				consumed = true
				return engine.Exit{}, e.waitError(ctx, id, err)
			case <-ctx.Done():
				return engine.Exit{}, ctx.Err()
			}
		}
	}
}

func (e *Engine) waitError(ctx context.Context, id string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("wait for container %s: %w", shortID(id), err)
}

// waitResult turns the waiter's answer into an Exit, preferring the
// container's recorded state, which also tells of an OOM kill.
func (e *Engine) waitResult(ctx context.Context, id string, r container.WaitResponse, wasCreated bool) (engine.Exit, error) {
	st, err := e.inspectState(ctx, id)
	switch {
	case err == nil && (st.Status == container.StateExited || st.Status == container.StateDead):
		return e.exit(ctx, id, st), nil
	case err == nil && st.Status == container.StateCreated && st.Error != "":
		return engine.Exit{Code: st.ExitCode}, fmt.Errorf("container %s did not start: %s", shortID(id), st.Error)
	case err != nil && !cerrdefs.IsNotFound(err):
		return engine.Exit{}, fmt.Errorf("wait for container %s: %w", shortID(id), err)
	}
	// Gone, being removed or restarted: the waiter's word is all there is.
	if r.Error != nil && r.Error.Message != "" {
		return engine.Exit{Code: int(r.StatusCode)}, fmt.Errorf("container %s: %s", shortID(id), r.Error.Message)
	}
	if wasCreated {
		return engine.Exit{}, fmt.Errorf("container %s was removed before its exit could be read", shortID(id))
	}
	return engine.Exit{Code: int(r.StatusCode)}, nil
}

// exit reads an ended container's state as an Exit, waiting for a late OOM
// mark when the code says the container was killed; both the waiter and the
// first inspection (a container that ended before Wait looked) come here.
func (e *Engine) exit(ctx context.Context, id string, st *container.State) engine.Exit {
	if st.ExitCode == 137 && !st.OOMKilled {
		st = e.lateOOM(ctx, id, st)
	}
	return engine.Exit{Code: st.ExitCode, OOMKilled: st.OOMKilled}
}

// lateOOM reads a killed container's state again for up to a second: the
// engine marks OOMKilled when the kernel's OOM event reaches it, which on
// a busy machine can come after the exit (seen in CI: exit 137, not
// marked). Whatever it reads last is the answer.
func (e *Engine) lateOOM(ctx context.Context, id string, st *container.State) *container.State {
	for range 10 {
		select {
		case <-ctx.Done():
			return st
		case <-time.After(100 * time.Millisecond):
		}
		again, err := e.inspectState(ctx, id)
		if err != nil {
			return st
		}
		if st = again; st.OOMKilled {
			return st
		}
	}
	return st
}

func (e *Engine) inspectState(ctx context.Context, id string) (*container.State, error) {
	resp, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		return nil, err
	}
	if resp.ContainerJSONBase == nil || resp.State == nil {
		return nil, fmt.Errorf("engine returned no state for container %s", shortID(id))
	}
	return resp.State, nil
}

// Pause freezes the container. Pausing a paused container succeeds; pausing
// one that is not running is an error.
func (e *Engine) Pause(ctx context.Context, id string) error {
	err := e.cli.ContainerPause(ctx, id)
	if err == nil {
		return nil
	}
	if st, ierr := e.inspectState(ctx, id); ierr == nil && st.Paused {
		return nil
	}
	return fmt.Errorf("pause container %s: %w", shortID(id), err)
}

// Unpause thaws the container. Unpausing a container that is not paused
// (running, exited) succeeds: afterwards it is not frozen either way.
func (e *Engine) Unpause(ctx context.Context, id string) error {
	err := e.cli.ContainerUnpause(ctx, id)
	if err == nil {
		return nil
	}
	if st, ierr := e.inspectState(ctx, id); ierr == nil && !st.Paused {
		return nil
	}
	return fmt.Errorf("unpause container %s: %w", shortID(id), err)
}

// Stop sends the container's stop signal (SIGTERM unless its image says
// otherwise), then SIGKILL after graceSeconds. A paused container is stopped
// too: the engine thaws it after signalling. Stopping a container that has
// exited, or is gone, succeeds. The call lasts up to graceSeconds, so ctx
// must allow that.
func (e *Engine) Stop(ctx context.Context, id string, graceSeconds int) error {
	grace := max(graceSeconds, 0)
	if err := e.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &grace}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: %w", shortID(id), err)
	}
	return nil
}

// Remove force-removes the container (killing it if it runs, paused or not)
// and its anonymous volumes; named volumes stay. Removing a container that is
// gone succeeds; when another removal of it is under way, Remove returns once
// it is gone.
func (e *Engine) Remove(ctx context.Context, id string) error {
	for {
		err := e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		if !cerrdefs.IsConflict(err) || !strings.Contains(err.Error(), "already in progress") {
			return fmt.Errorf("remove container %s: %w", shortID(id), err)
		}
		// Another removal is under way: ask again until it is gone (or that
		// removal failed and ours gets its turn).
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove container %s: %w", shortID(id), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Logs copies the container's output so far and, while it runs, what it
// writes until it exits (or ctx ends), stdout and stderr demultiplexed. Call
// it after Start: for a container not yet started it returns at once. A nil
// writer discards that stream.
func (e *Engine) Logs(ctx context.Context, id string, stdout, stderr io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	rc, err := e.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		return fmt.Errorf("logs of container %s: %w", shortID(id), err)
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(stdout, stderr, rc); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("logs of container %s: %w", shortID(id), err)
	}
	return nil
}

// State returns the engine's state name: created, running, paused,
// restarting, removing, exited or dead. A container that is gone is an error
// (errors.Is(err, ErrContainerNotFound)).
func (e *Engine) State(ctx context.Context, id string) (string, error) {
	st, err := e.inspectState(ctx, id)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("state of container %s: %w", shortID(id), errors.Join(ErrContainerNotFound, err))
		}
		return "", fmt.Errorf("state of container %s: %w", shortID(id), err)
	}
	return string(st.Status), nil
}

// ErrContainerNotFound is wrapped by State when the container does not
// exist.
var ErrContainerNotFound = errors.New("container not found")

// ListContainers returns the ids of the containers, in any state, that carry
// all the labels (with those values). An empty label set is refused.
func (e *Engine) ListContainers(ctx context.Context, labels map[string]string) ([]string, error) {
	list, err := e.Containers(ctx, labels)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(list))
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	return ids, nil
}

// Containers is ListContainers with each container's name, state and
// creation time, in one call to the engine.
func (e *Engine) Containers(ctx context.Context, labels map[string]string) ([]engine.ContainerInfo, error) {
	f, err := labelFilters(labels)
	if err != nil {
		return nil, err
	}
	list, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]engine.ContainerInfo, 0, len(list))
	for _, c := range list {
		info := engine.ContainerInfo{ID: c.ID, Name: c.ID, State: string(c.State), Created: time.Unix(c.Created, 0)}
		if len(c.Names) > 0 { // the engine writes names with a leading slash
			info.Name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, info)
	}
	return out, nil
}
