// Package docker is the agent's Runtime on a Docker engine. It is the only
// package of the project that imports the engine's SDK, so that a move to
// another SDK (github.com/moby/moby/client) touches this package alone.
//
// The calls are thin: each method is one or two API calls plus the error
// handling the engine.Runtime contract asks for (idempotent removal, pause
// and unpause; Wait that cannot miss an exit). The conversion of a
// ContainerSpec to the engine's types is pure and lives in convert.go.
//
// It works with engines from API 1.41 (Docker 20.10) on; the API version is
// negotiated on the first call.
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent/engine"
)

// Engine is an engine.Runtime on the Docker engine named by the environment
// (DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH, DOCKER_TLS_VERIFY; the
// local socket when unset). It is safe for concurrent use.
type Engine struct {
	cli *client.Client
	log hclog.Logger

	// started is closed (and replaced) each time a Start call returns, so
	// that Wait calls waiting on a created container look again: a failed
	// start leaves the container "created" and the engine never reports an
	// exit for it.
	mu      sync.Mutex
	started chan struct{}
}

var _ engine.Runtime = (*Engine)(nil)

// New connects to the engine named by the environment. It does not contact
// the engine; use Ping to check that it answers.
func New(logger hclog.Logger) (*Engine, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Engine{cli: cli, log: logger.Named("docker"), started: make(chan struct{})}, nil
}

// Ping checks that the engine answers, and settles the API version the
// client speaks: the client settles it lazily otherwise, at its first
// call, and calls made at once from several goroutines then race on it.
// Its error says which address was tried.
func (e *Engine) Ping(ctx context.Context) error {
	p, err := e.cli.Ping(ctx)
	if err != nil {
		return fmt.Errorf("docker engine at %s: %w", e.cli.DaemonHost(), err)
	}
	e.cli.NegotiateAPIVersionPing(p)
	return nil
}

// Close releases the client's connections.
func (e *Engine) Close() error {
	return e.cli.Close()
}

// HasImage reports whether ref is present locally.
func (e *Engine) HasImage(ctx context.Context, ref string) (bool, error) {
	if _, err := e.cli.ImageInspect(ctx, ref); err != nil {
		if cerrdefs.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return true, nil
}

// imageNotFoundError is what EnsureImage returns when it cannot get an image.
// errors.Is finds both engine.ErrImageNotFound and the cause.
type imageNotFoundError struct {
	ref string
	err error
}

func (e *imageNotFoundError) Error() string {
	return fmt.Sprintf("image %s is not present locally and could not be pulled: %v", e.ref, e.err)
}

func (e *imageNotFoundError) Unwrap() []error { return []error{engine.ErrImageNotFound, e.err} }

// EnsureImage makes ref present locally, pulling it only when absent. When
// the pull fails the error wraps engine.ErrImageNotFound; without a registry
// that takes as long as the engine's name lookup fails (milliseconds here).
func (e *Engine) EnsureImage(ctx context.Context, ref string) error {
	ok, err := e.HasImage(ctx, ref)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	named, err := normalizeRef(ref)
	if err != nil {
		return &imageNotFoundError{ref: ref, err: err}
	}
	e.log.Info("pulling image", "image", named.String())
	rc, err := e.cli.ImagePull(ctx, named.String(), image.PullOptions{})
	if err == nil {
		err = drainJSONMessages(rc)
		rc.Close()
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pull image %s: %w", ref, ctx.Err())
		}
		return &imageNotFoundError{ref: ref, err: err}
	}
	return nil
}

// ImportImage makes the image ref (":latest" when it has no tag) from the
// tar stream rootfs, with the given entrypoint in exec form (nil: none). An
// image of that name already present is replaced (its old id stays until
// nothing uses it).
func (e *Engine) ImportImage(ctx context.Context, ref string, rootfs io.Reader, entrypoint []string) error {
	named, err := normalizeRef(ref)
	if err != nil {
		return err
	}
	opts := image.ImportOptions{Message: "imported by monkeyci"}
	change, err := entrypointChange(entrypoint)
	if err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	if change != "" {
		opts.Changes = []string{change}
	}
	rc, err := e.cli.ImageImport(ctx, image.ImportSource{Source: rootfs, SourceName: "-"}, named.String(), opts)
	if err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	defer rc.Close()
	if err := drainJSONMessages(rc); err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	return nil
}

// jsonMessage is the part of the engine's progress messages (pull, import)
// that tells of failure.
type jsonMessage struct {
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// drainJSONMessages reads a progress stream to its end and returns the first
// error it reports: the engine answers 200 and then tells of a failure in
// the stream.
func drainJSONMessages(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading engine progress: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}

// CreateVolume creates a local named volume with the labels. Creating a
// volume that exists succeeds (the engine keeps the existing one).
func (e *Engine) CreateVolume(ctx context.Context, name string, labels map[string]string) error {
	if name == "" {
		return errors.New("create volume: empty name")
	}
	if _, err := e.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: "local", Labels: maps.Clone(labels)}); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}

// CreateOverlayVolume makes a volume of the local driver that the engine
// mounts as an overlay of lower, upper and work when a container first
// uses it.
func (e *Engine) CreateOverlayVolume(ctx context.Context, name string, labels map[string]string, lower, upper, work string) error {
	if name == "" {
		return errors.New("create volume: empty name")
	}
	for _, p := range []string{lower, upper, work} {
		// The mount's options are a comma-separated list of colon-separated
		// paths.
		if !filepath.IsAbs(p) || strings.ContainsAny(p, ",:") {
			return fmt.Errorf("create volume %s: %q cannot be an overlay's folder (an absolute path without ',' or ':')", name, p)
		}
	}
	opts := map[string]string{"type": "overlay", "device": "overlay", "o": "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work}
	if _, err := e.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: "local", DriverOpts: opts, Labels: maps.Clone(labels)}); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}

// RemoveVolume removes a named volume; one that is gone is not an error. A
// volume still used by a container is an error: remove the container first.
func (e *Engine) RemoveVolume(ctx context.Context, name string) error {
	if err := e.cli.VolumeRemove(ctx, name, false); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// ListVolumes returns the names of the volumes that carry all the labels
// (with those values). An empty label set is refused.
func (e *Engine) ListVolumes(ctx context.Context, labels map[string]string) ([]string, error) {
	f, err := labelFilters(labels)
	if err != nil {
		return nil, err
	}
	resp, err := e.cli.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	names := make([]string, 0, len(resp.Volumes))
	for _, v := range resp.Volumes {
		names = append(names, v.Name)
	}
	return names, nil
}
