package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/agent/link"
	"github.com/monkeyci/monkeyci/agent/node"
	"github.com/monkeyci/monkeyci/coordinator/server"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func newUpCommand(stdout, stderr io.Writer) *cobra.Command {
	cfg := server.Config{TLS: true}
	var build string
	var params []string
	var offer *capacityFlags
	var logLevel *logFlag
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a coordinator and one agent in one process, on the embedded defaults",
		Long: `up starts a coordinator (state in --data-dir) and an agent that runs builds
on the local Docker engine, in one process, and prints the addresses and, on
the first start of --data-dir, the admin token. Trigger builds with
'monkeyci trigger'. Ctrl-C drains the agent (its builds finish); a second
Ctrl-C cancels them.

With --build DIR it builds DIR through the fleet once, follows the build as
'monkeyci trigger --wait' does, then stops, exiting 0 if the build succeeded
and 1 if not. DIR is a git repository (its HEAD is built) or a plain
directory (its files are built, as 'monkeyci run' builds them).`,
		Example: `  monkeyci up --build examples/hello
  monkeyci up --data-dir ~/.monkeyci --cpus 4 --memory 8g`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			capacity, err := offer.resources()
			if err != nil {
				return usageError(err)
			}
			var trigger *fleet.TriggerRequest
			if build != "" {
				if trigger, err = upBuild(build, params); err != nil {
					return usageError(err)
				}
			}
			logger := logLevel.newLogger("monkeyci", stderr)
			cfg.Logger = logger.Named("coordinator")
			cfg.MasterKey = os.Getenv("MONKEYCI_MASTER_KEY")
			cfg.Database = orEnv(cfg.Database, "MONKEYCI_DATABASE")
			srv, err := server.Start(context.Background(), cfg)
			if err != nil {
				return failedError(err)
			}
			defer srv.Close()
			return runUp(cmd, srv, cfg.DataDir, trigger, node.Config{
				Link: link.Config{
					Coordinator: srv.GRPCAddr, TLS: srv.ClientTLS(), JoinToken: srv.JoinToken, Name: "local",
					StateDir: filepath.Join(cfg.DataDir, "agent"), MirrorSize: offer.mirrorBytes,
				},
				AgentID: localAgentID(cfg.DataDir), Capacity: capacity, Pause: offer.pause, Pids: offer.pids, CacheSize: offer.cacheBytes, Version: version, Logger: logger,
			}, stdout, stderr)
		},
	}
	f := cmd.Flags()
	addServerFlags(f, &cfg)
	offer = addCapacityFlags(f)
	logLevel = addLogFlag(f)
	f.StringVar(&build, "build", "", "build this directory once through the fleet, then stop")
	f.StringArrayVar(&params, "param", nil, "a parameter KEY=VALUE of the --build build (repeatable)")
	_ = cmd.MarkFlagDirname("build")
	return cmd
}

// runUp runs up's agent beside srv until it drains: after the build of
// trigger (nil: none), or when a signal says so.
func runUp(cmd *cobra.Command, srv *server.Server, dataDir string, trigger *fleet.TriggerRequest, local node.Config, stdout, stderr io.Writer) error {
	n, err := node.New(local)
	if err != nil {
		return failedError(err)
	}
	printUp(stdout, srv, dataDir, trigger == nil)
	built := make(chan error, 1)
	if trigger != nil {
		go func() {
			built <- buildOnce(cmd, srv, trigger, stdout, stderr)
			n.Drain() // the build is over: stop
		}()
	}
	err = n.RunUntilSignaled()
	n.Close()
	if err != nil || trigger == nil {
		return agentEnded(err)
	}
	return <-built
}

// upBuild checks --build and --param before anything starts.
func upBuild(dir string, params []string) (*fleet.TriggerRequest, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("--build %s: not a directory", dir)
	}
	url, err := admin.ResolveRepo(dir)
	if err != nil {
		return nil, err
	}
	p, err := admin.ParseKV("--param", params)
	if err != nil {
		return nil, err
	}
	return &fleet.TriggerRequest{Url: url, Params: p}, nil
}

// buildOnce triggers a build on srv through its admin API, as a user's
// command line would, and follows it to its end.
func buildOnce(cmd *cobra.Command, srv *server.Server, req *fleet.TriggerRequest, stdout, stderr io.Writer) error {
	c, err := admin.Dial(admin.Options{Server: srv.GRPCAddr, Token: srv.AdminToken, CA: srv.CAFile, TLS: srv.CAFile != ""})
	if err != nil {
		return failedError(err)
	}
	defer c.Close()
	ctx, cancel := callContext(cmd)
	b, err := c.Trigger(ctx, req)
	cancel()
	if err != nil {
		return adminFailed(c, err)
	}
	fmt.Fprintf(stderr, "build %s of %s\n", b.GetId(), req.GetUrl())
	return followBuild(cmd, c, b.GetId(), stdout, stderr)
}

func printUp(w io.Writer, srv *server.Server, dataDir string, hints bool) {
	fmt.Fprintf(w, "monkeyci is up: coordinator on %s (gRPC, TLS), %s (HTTP), and one agent\n", srv.GRPCAddr, srv.HTTPAddr)
	if hints {
		printExport(w, srv, dataDir)
		fmt.Fprintf(w, "  then: monkeyci trigger --repo PATH_OR_URL --wait\n")
	}
}

// localAgentID names the containers of up's agent after its data dir: two
// ups on one engine, each sweeping what its own killed run left at start,
// never sweep each other's.
func localAgentID(dataDir string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	h := fnv.New32a()
	h.Write([]byte(abs))
	return fmt.Sprintf("local-%08x", h.Sum32())
}
