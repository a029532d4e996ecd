// Package engine is the container engine as MonkeyCI's agent and docker
// pool see it: the Runtime interface (the Docker implementation is in
// agent/docker), the plain data it takes and returns, and what both do
// through it: make the agent's image from its binary, and sweep what an
// agent left behind. The pool needs these, not the runner: this package
// lets it run agents without importing the agent package.
package engine

import (
	"context"
	"errors"
	"io"
)

// Runtime is the container engine. The Docker implementation lives in
// agent/docker; it is the only package that imports the engine's SDK.
//
// Contract:
//   - Every call is safe for concurrent use.
//   - Remove, RemoveVolume and RemoveNetwork are idempotent: removing what is gone is not an error.
//   - Pause and Unpause are idempotent: pausing a paused container succeeds.
//     While paused a container's processes use no CPU and answer nothing.
//   - Wait returns when the container has exited (or ctx ends); it may be
//     called before or after Start.
//   - After a cancel, cleanup calls must be given a fresh context: they are
//     made to run even when the build's context is done.
type Runtime interface {
	// EnsureImage makes ref present locally, pulling it only when absent.
	EnsureImage(ctx context.Context, ref string) error
	// ImportImage makes an image named ref whose file system is the tar
	// stream rootfs, with the given entrypoint. Used to make the agent's own
	// image from its binary without a registry.
	ImportImage(ctx context.Context, ref string, rootfs io.Reader, entrypoint []string) error
	// HasImage reports whether ref is present locally.
	HasImage(ctx context.Context, ref string) (bool, error)

	CreateVolume(ctx context.Context, name string, labels map[string]string) error
	// CreateOverlayVolume makes a volume that is an overlay on the folder
	// lower (never written to), its changes in upper (work is the overlay's
	// own folder, on upper's file system): all host paths.
	CreateOverlayVolume(ctx context.Context, name string, labels map[string]string, lower, upper, work string) error
	RemoveVolume(ctx context.Context, name string) error

	// Create makes a container (not started) and returns its id.
	Create(ctx context.Context, spec ContainerSpec) (string, error)
	// CopyTo extracts the tar stream into dir inside the container.
	CopyTo(ctx context.Context, id, dir string, tar io.Reader) error
	// CopyFrom returns path inside the container as a tar stream whose root
	// entry is path's base name.
	CopyFrom(ctx context.Context, id, path string) (io.ReadCloser, error)
	Start(ctx context.Context, id string) error
	// Wait blocks until the container exits and returns its exit status.
	Wait(ctx context.Context, id string) (Exit, error)
	Pause(ctx context.Context, id string) error
	Unpause(ctx context.Context, id string) error
	// Stop sends SIGTERM, then SIGKILL after grace.
	Stop(ctx context.Context, id string, graceSeconds int) error
	// Remove force-removes the container and its anonymous volumes.
	Remove(ctx context.Context, id string) error
	// Logs streams the container's combined output (for images without a shell).
	Logs(ctx context.Context, id string, stdout, stderr io.Writer) error
	// Address returns a started container's IP address on network, as the
	// agent's host reaches it.
	Address(ctx context.Context, id, network string) (string, error)
	// State returns the engine's state name: created, running, paused, exited...
	State(ctx context.Context, id string) (string, error)

	// CreateNetwork makes a bridge network of that name with the labels;
	// one of that name that exists already is an error.
	CreateNetwork(ctx context.Context, name string, labels map[string]string) error
	// RemoveNetwork removes a network no container uses any more.
	RemoveNetwork(ctx context.Context, name string) error

	// ListContainers, ListVolumes and ListNetworks return ids/names of what
	// carries all labels.
	ListContainers(ctx context.Context, labels map[string]string) ([]string, error)
	ListVolumes(ctx context.Context, labels map[string]string) ([]string, error)
	ListNetworks(ctx context.Context, labels map[string]string) ([]string, error)
}

// ErrImageNotFound is returned (wrapped) by EnsureImage when the image is
// neither present nor pullable.
var ErrImageNotFound = errors.New("image not found")

// ErrPathNotFound is returned (wrapped) by CopyFrom when the path does not
// exist in the container.
var ErrPathNotFound = errors.New("no such file or directory")
