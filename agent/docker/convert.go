package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"

	"github.com/monkeyci/monkeyci/agent/engine"
)

// This file holds the pure conversions between the agent's plain data and
// the engine's API types. Nothing here talks to an engine.

// toContainerConfig turns a spec into the engine's create request. It checks
// what the engine would otherwise reject with a less helpful message, or
// silently accept wrongly (a mount with both a volume and a source).
func toContainerConfig(spec engine.ContainerSpec) (*container.Config, *container.HostConfig, error) {
	if spec.Image == "" {
		return nil, nil, errors.New("container spec has no image")
	}
	if spec.NanoCPUs < 0 {
		return nil, nil, fmt.Errorf("container spec: negative NanoCPUs %d", spec.NanoCPUs)
	}
	if spec.Memory < 0 {
		return nil, nil, fmt.Errorf("container spec: negative Memory %d", spec.Memory)
	}
	if spec.Pids < 0 {
		return nil, nil, fmt.Errorf("container spec: negative Pids %d", spec.Pids)
	}
	if spec.WorkDir != "" && !path.IsAbs(spec.WorkDir) {
		return nil, nil, fmt.Errorf("container spec: work dir %q is not an absolute path", spec.WorkDir)
	}
	for _, kv := range spec.Env {
		if k, _, _ := strings.Cut(kv, "="); k == "" {
			return nil, nil, fmt.Errorf("container spec: environment entry %q has no name", kv)
		}
	}
	mounts := make([]mount.Mount, 0, len(spec.Mounts))
	for i, m := range spec.Mounts {
		mm, err := toMount(m)
		if err != nil {
			return nil, nil, fmt.Errorf("container spec: mount %d: %w", i, err)
		}
		mounts = append(mounts, mm)
	}

	cfg := &container.Config{
		Image:      spec.Image,
		Cmd:        slices.Clone(spec.Cmd),
		Env:        slices.Clone(spec.Env),
		WorkingDir: spec.WorkDir,
		Labels:     maps.Clone(spec.Labels),
	}
	// nil keeps the image's entrypoint; an empty non-nil slice is sent as []
	// and clears it (the engine replaces only a null entrypoint by the image's).
	if spec.Entrypoint != nil {
		cfg.Entrypoint = append(make([]string, 0, len(spec.Entrypoint)), spec.Entrypoint...)
	}
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(spec.Network),
		Mounts:      mounts,
		Resources: container.Resources{
			NanoCPUs: spec.NanoCPUs,
			Memory:   spec.Memory,
		},
		CapDrop: slices.Clone(spec.CapDrop),
	}
	if spec.Pids > 0 {
		host.Resources.PidsLimit = &spec.Pids
	}
	if spec.NoNewPrivileges {
		host.SecurityOpt = []string{"no-new-privileges"}
	}
	if spec.Memory > 0 {
		// Memory means memory: without this the engine lets a container use
		// as much swap again as its limit, which the capacity ledger does not
		// count. (Ignored, with a warning, where the kernel lacks swap
		// accounting.)
		host.Resources.MemorySwap = spec.Memory
	}
	return cfg, host, nil
}

// toNetworkingConfig gives a container its aliases on the network it
// joins; nil when it has none. Aliases need a network made by
// CreateNetwork: the engine refuses them on its default bridge.
func toNetworkingConfig(spec engine.ContainerSpec) (*network.NetworkingConfig, error) {
	if len(spec.Aliases) == 0 {
		return nil, nil
	}
	switch mode := container.NetworkMode(spec.Network); {
	case mode == "", mode.IsDefault(), mode.IsBridge(), mode.IsNone(), mode.IsHost(), mode.IsContainer():
		return nil, fmt.Errorf("container spec: aliases %q need a network of the build's own, not %q", spec.Aliases, spec.Network)
	}
	return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		spec.Network: {Aliases: slices.Clone(spec.Aliases)},
	}}, nil
}

// toMount converts one mount. Exactly one of Volume and Source must be set
// and Target must be absolute. A volume mount names an existing volume: the
// engine would create a missing one silently, without labels, so callers
// create volumes first with CreateVolume.
func toMount(m engine.Mount) (mount.Mount, error) {
	if m.Target == "" || !path.IsAbs(m.Target) {
		return mount.Mount{}, fmt.Errorf("target %q is not an absolute path", m.Target)
	}
	switch {
	case m.Volume != "" && m.Source != "":
		return mount.Mount{}, fmt.Errorf("both volume %q and source %q set for %s", m.Volume, m.Source, m.Target)
	case m.Volume != "":
		// Never the image's files at Target copied into the volume: a
		// workspace holds the source only. And so the engine mounts the
		// volume when the container starts, not when it is made (an
		// overlay's lower layer may still be being fetched then).
		return mount.Mount{Type: mount.TypeVolume, Source: m.Volume, Target: m.Target, ReadOnly: m.ReadOnly,
			VolumeOptions: &mount.VolumeOptions{NoCopy: true}}, nil
	case m.Source != "":
		if !path.IsAbs(m.Source) {
			return mount.Mount{}, fmt.Errorf("bind source %q is not an absolute path", m.Source)
		}
		return mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}, nil
	default:
		return mount.Mount{}, fmt.Errorf("neither volume nor source set for %s", m.Target)
	}
}

// labelFilters makes the filter "carries every one of these labels with these
// values". An empty set is refused: it would match everything on the engine,
// and these lists feed removals.
func labelFilters(labels map[string]string) (filters.Args, error) {
	if len(labels) == 0 {
		return filters.Args{}, errors.New("refusing to list by an empty label set: it would match everything on the engine")
	}
	args := filters.NewArgs()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if k == "" {
			return filters.Args{}, errors.New("empty label name")
		}
		args.Add("label", k+"="+labels[k])
	}
	return args, nil
}

// normalizeRef turns a user's image reference into the canonical form the
// engine stores ("busybox" -> "docker.io/library/busybox:latest"), so that a
// pull never asks for every tag of a repository.
func normalizeRef(ref string) (reference.Named, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return nil, fmt.Errorf("bad image reference %q: %w", ref, err)
	}
	return reference.TagNameOnly(named), nil
}

// entrypointChange is the Dockerfile instruction that sets an imported
// image's entrypoint, in JSON (exec) form so nothing runs through a shell.
func entrypointChange(entrypoint []string) (string, error) {
	if entrypoint == nil {
		return "", nil
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(append(make([]string, 0, len(entrypoint)), entrypoint...)); err != nil {
		return "", err
	}
	return "ENTRYPOINT " + strings.TrimSpace(b.String()), nil
}

// shortID shortens a full container id for messages; names pass unchanged.
func shortID(id string) string {
	if len(id) != 64 {
		return id
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id
		}
	}
	return id[:12]
}
