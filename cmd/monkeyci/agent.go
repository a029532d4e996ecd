package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/link"
	"github.com/monkeyci/monkeyci/agent/node"
	"github.com/monkeyci/monkeyci/coordinator/tlsca"
	"github.com/monkeyci/monkeyci/pipeline"
)

// agentConfig is everything `monkeyci agent` is told.
type agentConfig struct {
	coordinator string
	joinToken   string
	name        string
	instance    string
	labels      string
	ca          string
	tls         bool
	stateDir    string
	offer       *capacityFlags
	logLevel    *logFlag
	// nameGiven: --name was set; else a second agent on the machine is
	// named after its state dir's slot (host-2).
	nameGiven bool
}

func newAgentCommand(stderr io.Writer) *cobra.Command {
	host, _ := os.Hostname()
	cfg := agentConfig{tls: true, name: host}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run an agent: take builds from the coordinator and run them on the local Docker engine",
		Long: `agent joins the coordinator with the join token (once; it keeps its own
credential in --state-dir after), runs the builds it is assigned, several
at once within its capacity, and reports their events and logs until the
coordinator has stored them. SIGTERM drains it: it takes no new build,
lets the running ones finish, and exits 0. A second signal cancels them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.joinToken = orEnv(cfg.joinToken, "MONKEYCI_JOIN_TOKEN")
			cfg.instance = orEnv(cfg.instance, "MONKEYCI_INSTANCE")
			cfg.nameGiven = cmd.Flags().Changed("name")
			return runAgent(cfg, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.coordinator, "coordinator", "127.0.0.1:7433", "the coordinator's gRPC address, HOST:PORT; with several coordinators on one database, each one's, comma-separated: the agent finds the leader, and the next one when it goes")
	f.StringVar(&cfg.joinToken, "join-token", "", "the join token (env MONKEYCI_JOIN_TOKEN); needed to join the first time, or again when the coordinator no longer knows the agent")
	f.StringVar(&cfg.name, "name", cfg.name, "the agent's name")
	f.StringVar(&cfg.instance, "instance", "", "the pool instance this agent runs on (set by the pool's cloud-init or container; env MONKEYCI_INSTANCE)")
	f.StringVar(&cfg.labels, "labels", "", "labels k=v,... builds can ask for (arch=amd or arm is set from the machine unless given)")
	f.StringVar(&cfg.ca, "ca", "", "the coordinator's CA file (its data dir's tls/ca.pem)")
	f.BoolVar(&cfg.tls, "tls", true, "connect over TLS (--tls=false only for loopback tests)")
	f.StringVar(&cfg.stateDir, "state-dir", "", "where the agent keeps its identity and build files (default: the user cache dir's monkeyci/agent, or agent-2... when another agent uses it)")
	cfg.offer = addCapacityFlags(f)
	cfg.logLevel = addLogFlag(f)
	return cmd
}

func runAgent(cfg agentConfig, stderr io.Writer) error {
	labels, err := parseLabels(cfg.labels)
	if err != nil {
		return usageError(err)
	}
	if a, ok := labels[agent.LabelArch]; ok && a != pipeline.ArchAMD && a != pipeline.ArchARM {
		return usageError(fmt.Errorf("--labels arch=%s: expected arch=amd or arch=arm (the default is this machine's, %s)", a, pipeline.ArchOf(runtime.GOARCH)))
	}
	capacity, err := cfg.offer.resources()
	if err != nil {
		return usageError(err)
	}
	stateDir, lock, agentID, err := lockAgentState(&cfg)
	if err != nil {
		return err
	}
	defer lock.Close()
	if _, err := os.Stat(link.IdentityFile(stateDir)); cfg.joinToken == "" && err != nil {
		return usageError(fmt.Errorf("--join-token (or MONKEYCI_JOIN_TOKEN) is required: the agent has not joined yet (no identity in %s)", stateDir))
	}
	var tlsConfig *tls.Config
	if cfg.tls {
		if cfg.ca == "" {
			return usageError(fmt.Errorf("--ca is required with TLS (or --tls=false on loopback)"))
		}
		host := cfg.coordinator
		if h, _, err := net.SplitHostPort(host); err == nil { // [::1]:7433 too
			host = h
		}
		if strings.Contains(cfg.coordinator, ",") {
			host = "" // each coordinator is checked for its own address
		}
		if tlsConfig, err = tlsca.ClientConfig(cfg.ca, host); err != nil {
			return usageError(fmt.Errorf("--ca: %w", err))
		}
	}
	joined := func(id string) {
		fmt.Fprintf(stderr, "agent %s (%s) joined the coordinator at %s, offering %s CPUs and %s of memory\n",
			id, cfg.name, cfg.coordinator, admin.CPUs(capacity.MilliCPUs), admin.Bytes(capacity.Memory))
	}
	n, err := node.New(node.Config{
		Link: link.Config{
			Coordinator: cfg.coordinator, TLS: tlsConfig, JoinToken: cfg.joinToken, Name: cfg.name, Instance: cfg.instance, Labels: labels, StateDir: stateDir, MirrorSize: cfg.offer.mirrorBytes,
			Joined: joined,
		},
		AgentID: agentID, Capacity: capacity, Pause: cfg.offer.pause, Pids: cfg.offer.pids, CacheSize: cfg.offer.cacheBytes, Version: version, Logger: cfg.logLevel.newLogger("agent", stderr),
	})
	if err != nil {
		return failedError(err)
	}
	defer n.Close()
	return agentEnded(n.RunUntilSignaled())
}

// agentEnded is the command's end after its agent's: a coordinator's
// refusal is the operator's to fix (exit 2), any other error exit 1.
func agentEnded(err error) error {
	if refused := (*link.RefusedError)(nil); errors.As(err, &refused) {
		return usageError(err)
	}
	if err != nil {
		return failedError(err)
	}
	return nil
}

// lockAgentState takes the agent's state dir for this process: the one
// --state-dir names (another agent there is refused), or else the first
// free default one. A second default one gives the agent its slot in its
// name (unless --name was given) and in its runner's id either way, so
// the agents' containers never mix. It returns the dir, its lock and the
// runner's id.
func lockAgentState(cfg *agentConfig) (string, *os.File, string, error) {
	if cfg.stateDir != "" {
		parent, err := filepath.Abs(cfg.stateDir)
		if err != nil {
			return "", nil, "", usageError(fmt.Errorf("--state-dir: %w", err))
		}
		dir := filepath.Join(parent, "agent")
		lock, err := link.LockStateDir(dir)
		if errors.Is(err, link.ErrStateDirBusy) {
			return "", nil, "", usageError(fmt.Errorf("--state-dir %s: another agent runs with it; give each agent its own", cfg.stateDir))
		}
		if err != nil {
			return "", nil, "", failedError(err)
		}
		return dir, lock, cfg.name, nil
	}
	parent, err := stateDirOf("")
	if err != nil {
		return "", nil, "", usageError(err)
	}
	dir, slot, lock, err := link.LockSlot(parent)
	if err != nil {
		return "", nil, "", failedError(err)
	}
	id := cfg.name
	if slot > 1 {
		id = fmt.Sprintf("%s-%d", cfg.name, slot)
		if !cfg.nameGiven {
			cfg.name = id
		}
	}
	return dir, lock, id, nil
}

func parseLabels(s string) (map[string]string, error) {
	labels := map[string]string{}
	if s == "" {
		return labels, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels %q: expected k=v,...", s)
		}
		labels[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return labels, nil
}
