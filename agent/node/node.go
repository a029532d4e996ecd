// Package node is an agent at work on this machine: its container engine,
// the ledger of what it offers, the runner of its builds and its link to
// the coordinator, put together and taken apart in order. `monkeyci agent`
// and `monkeyci up` run one, as they run coordinator/server.
package node

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/docker"
	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/agent/link"
	"github.com/monkeyci/monkeyci/pipeline"
)

// Config is what a node is told.
type Config struct {
	// Link says which coordinator the node joins and as whom: its address,
	// TLS, join token, name, instance, labels, state dir and Joined. Its
	// runner, ledger, version and logger are the node's.
	Link link.Config
	// AgentID labels the containers, volumes and networks of the node's
	// builds: what a killed run of it left is swept at start, and nothing
	// of another agent's.
	AgentID string
	// Capacity is what the node offers its builds.
	Capacity agent.Resources
	// Pause freezes script containers while they await their jobs.
	Pause bool
	// Pids bounds each build container's processes (0: agent.DefaultPids).
	Pids int64
	// CacheSize bounds the caches kept on this machine (0: no bound).
	CacheSize int64
	Version   string
	Logger    hclog.Logger
	// Runtime runs the builds' containers (nil: the local Docker engine,
	// closed with the node).
	Runtime engine.Runtime
	// Binary is the monkeyci binary script containers run (default: this
	// process's executable).
	Binary string
}

// Node is an agent set up on this machine: Run links it to its
// coordinator, Close takes it apart.
type Node struct {
	link   *link.Link
	runner *agent.Runner
	log    hclog.Logger
	// closeEngine closes the Docker engine the node opened (nil: the
	// runtime was given).
	closeEngine func()
	// The scripts' image is made in the background from New on;
	// stopPreparing gives up on it, prepared is closed once it is over.
	stopPreparing context.CancelFunc
	prepared      chan struct{}
}

// New sets the node up: it opens the engine, sweeps what a killed run of
// the agent left behind, starts making the scripts' image and makes the
// link, which has not connected yet.
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	n := &Node{log: cfg.Logger}
	rt := cfg.Runtime
	if rt == nil {
		dockerEngine, err := docker.New(cfg.Logger.Named("docker"))
		if err != nil {
			return nil, fmt.Errorf("docker: %w", err)
		}
		rt, n.closeEngine = dockerEngine, func() { dockerEngine.Close() }
	}
	ledger := agent.NewLedger(cfg.Capacity)
	lc := cfg.Link
	lc.Labels = withArch(lc.Labels)
	runner, err := agent.NewRunner(agent.Config{
		Runtime: rt, Ledger: ledger, Logger: cfg.Logger, Binary: cfg.Binary,
		StateDir: filepath.Join(lc.StateDir, "builds"), CacheDir: filepath.Join(lc.StateDir, "caches"), CacheSize: cfg.CacheSize,
		Pause: cfg.Pause, AgentID: cfg.AgentID, Pids: cfg.Pids, Arch: lc.Labels[agent.LabelArch],
	})
	if err != nil {
		n.Close()
		return nil, err
	}
	if swept, err := runner.Sweep(context.Background()); err != nil {
		n.Close()
		return nil, err
	} else if swept > 0 {
		n.log.Info("removed what an earlier run of this agent left behind", "containers and volumes", swept)
	}
	n.prepare(runner)
	lc.Runner, lc.Ledger, lc.Version, lc.Logger = runner, ledger, cfg.Version, cfg.Logger.Named("link")
	if n.link, err = link.New(lc); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// withArch is labels with the architecture of the jobs, a label builds can
// ask for: this machine's, unless the operator said otherwise (an emulator
// runs the other's).
func withArch(labels map[string]string) map[string]string {
	labels = maps.Clone(labels)
	if labels == nil {
		labels = map[string]string{}
	}
	if labels[agent.LabelArch] == "" {
		labels[agent.LabelArch] = pipeline.ArchOf(runtime.GOARCH)
	}
	return labels
}

// prepare makes the scripts' image now, beside the join, not on the first
// build's clock: a build sent to an idle agent (one whose agent was lost,
// say) starts sooner. From then on the runner is the node's to close.
func (n *Node) prepare(runner *agent.Runner) {
	ctx, cancel := context.WithCancel(context.Background())
	n.runner, n.stopPreparing, n.prepared = runner, cancel, make(chan struct{})
	go func() {
		defer close(n.prepared)
		if _, err := runner.Prepare(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("could not prepare for builds; the first build tries again", "error", err)
		}
	}()
}

// Drain stops taking builds: Run returns once the running ones have ended
// and everything about them is stored.
func (n *Node) Drain() { n.link.Drain() }

// Run keeps the node linked to its coordinator until it has drained, or
// until ctx ends, which cancels its builds; either way it returns nil. A
// coordinator that refuses the agent ends it with a *link.RefusedError.
func (n *Node) Run(ctx context.Context) error {
	if err := n.link.Run(ctx); err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// RunUntilSignaled is Run, where the first SIGTERM or SIGINT drains the
// node and a second one cancels its builds.
func (n *Node) RunUntilSignaled() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done(): // Run is over
			return
		}
		n.log.Info("draining: no new builds; the running ones finish (signal again to cancel them)")
		n.Drain()
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	return n.Run(ctx)
}

// Close takes the node apart once Run has returned: it gives up on the
// scripts' image, cleans up after the builds and closes the engine it
// opened.
func (n *Node) Close() {
	if n.runner != nil {
		n.stopPreparing() // a node told to stop does not wait for an image
		<-n.prepared      // before the runner's Close: what Prepare makes is made by then
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := n.runner.Close(ctx); err != nil {
			n.log.Warn("could not clean up", "error", err)
		}
	}
	if n.closeEngine != nil {
		n.closeEngine()
	}
}
