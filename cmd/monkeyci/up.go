package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/agent/link"
	"github.com/monkeyci/monkeyci/coordinator/server"
)

func newUpCommand(stdout, stderr io.Writer) *cobra.Command {
	cfg := server.Config{TLS: true}
	var cpus float64
	var memory, logLevel string
	pause := true
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a coordinator and one agent in one process, on the embedded defaults",
		Long: `up starts a coordinator (state in --data-dir) and an agent that runs builds
on the local Docker engine, in one process, and prints the addresses and the
admin token. Trigger builds with 'monkeyci trigger'. Ctrl-C drains the agent
(its builds finish); a second Ctrl-C cancels them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := hclog.New(&hclog.LoggerOptions{Name: "monkeyci", Output: stderr, Level: hclog.LevelFromString(logLevel)})
			capacity, err := capacityOf(cpus, memory)
			if err != nil {
				return usageError(err)
			}
			cfg.Logger = log.Named("coordinator")
			srv, err := server.Start(context.Background(), cfg)
			if err != nil {
				return failedError(err)
			}
			defer srv.Close()
			return runLinkedAgent(link.Config{
				Coordinator: srv.GRPCAddr, TLS: srv.ClientTLS(), JoinToken: srv.JoinToken, Name: "local",
				StateDir: filepath.Join(cfg.DataDir, "agent"),
			}, capacity, pause, log, func() { printUp(stdout, srv) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "where state, logs and the CA are kept")
	f.StringVar(&cfg.GRPCListen, "grpc-listen", "127.0.0.1:7433", "address for agents and the admin API")
	f.StringVar(&cfg.HTTPListen, "http-listen", "127.0.0.1:7480", "address for /healthz")
	f.Float64Var(&cpus, "cpus", float64(runtime.NumCPU()), "CPUs the agent offers")
	f.StringVar(&memory, "memory", "", "memory the agent offers (default: the machine's)")
	f.BoolVar(&pause, "pause", true, "pause script containers while they await their jobs")
	f.StringVar(&logLevel, "log-level", "warn", "log level: trace, debug, info, warn, error")
	return cmd
}

func printUp(w io.Writer, srv *server.Server) {
	fmt.Fprintf(w, "monkeyci is up: coordinator on %s (gRPC, TLS), %s (HTTP), and one agent\n", srv.GRPCAddr, srv.HTTPAddr)
	fmt.Fprintf(w, "  export MONKEYCI_SERVER=%s MONKEYCI_CA=%s MONKEYCI_TOKEN=%s\n", srv.GRPCAddr, srv.CAFile, srv.AdminToken)
	fmt.Fprintf(w, "  then: monkeyci trigger --repo PATH_OR_URL --wait\n")
}
