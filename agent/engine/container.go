package engine

import "time"

// Mount puts a host path or a named volume into a container.
type Mount struct {
	// Volume is a named volume; Source a host path. Exactly one is set.
	Volume   string
	Source   string
	Target   string
	ReadOnly bool
}

// ContainerSpec is everything needed to create a container. It is plain data,
// so the conversion to the engine's types can be tested without an engine.
type ContainerSpec struct {
	Name       string
	Image      string
	Entrypoint []string // nil keeps the image's; empty non-nil clears it
	Cmd        []string
	Env        []string // KEY=VALUE
	WorkDir    string
	Labels     map[string]string
	Mounts     []Mount
	NanoCPUs   int64 // 0: no limit
	Memory     int64 // bytes; 0: no limit
	// Network is the network mode: "" for the engine's default, "none" for
	// none, or the name of a network made by CreateNetwork.
	Network string
	// Aliases are the names other containers of Network reach this one by
	// (a network made by CreateNetwork only).
	Aliases []string
	// Pids bounds the number of processes (and threads); 0: no limit.
	Pids int64
	// NoNewPrivileges stops a process from gaining privileges it did not
	// start with (setuid binaries, file capabilities).
	NoNewPrivileges bool
	// CapDrop are capabilities taken from the engine's default set, like
	// NET_RAW.
	CapDrop []string
}

// ContainerInfo is a container as the engine lists it.
type ContainerInfo struct {
	ID, Name string
	// State is the engine's word: created, running, paused, restarting,
	// removing, exited or dead.
	State   string
	Created time.Time
}

// Exit is how a container ended.
type Exit struct {
	Code      int
	OOMKilled bool
}
