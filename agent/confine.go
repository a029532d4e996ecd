package agent

import "slices"

// What every container of a build (script and jobs) is held to, beside its
// CPU and memory: a build is untrusted code.

// DefaultPids is how many processes (and threads) a build's container may
// have unless the agent says otherwise: plenty for a compiler, few enough
// that a fork bomb meets the limit long before the machine's.
const DefaultPids = 4096

// droppedCaps are taken from the engine's default capability set: NET_RAW
// (raw sockets: forged packets and ARP tricks on the build's network) and
// MKNOD (device nodes). The rest of the default set stays, as docker run
// gives it: package managers chown, setuid and bind low ports.
var droppedCaps = []string{"NET_RAW", "MKNOD"}

// confine holds spec to the limits of a build's container. pids is the
// process limit. The user stays what the image says: a job whose image
// runs as root is root inside its container, without the dropped
// capabilities and unable to gain privileges (no-new-privileges: setuid
// binaries and file capabilities give nothing).
func confine(spec *ContainerSpec, pids int64) {
	spec.Pids = pids
	spec.NoNewPrivileges = true
	spec.CapDrop = slices.Clone(droppedCaps)
}
