package agent

import "github.com/monkeyci/monkeyci/agent/engine"

// The container engine's interface and plain types live in agent/engine,
// which the docker pool shares without importing the runner. These names
// let the runner's code keep reading as it did.
type (
	Runtime       = engine.Runtime
	ContainerSpec = engine.ContainerSpec
	Mount         = engine.Mount
	Exit          = engine.Exit
)

// ErrPathNotFound is engine.ErrPathNotFound: CopyFrom found no such path.
var ErrPathNotFound = engine.ErrPathNotFound
