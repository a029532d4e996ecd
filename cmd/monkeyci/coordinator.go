package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/leader"
	"github.com/monkeyci/monkeyci/coordinator/server"
)

func newCoordinatorCommand(stdout, stderr io.Writer) *cobra.Command {
	cfg := server.Config{TLS: true}
	var pf *poolFlags
	var logLevel *logFlag
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run the coordinator: the durable build queue, the dispatcher and the admin API",
		Long: `coordinator keeps its state under --data-dir (SQLite, logs, a CA for TLS),
takes agents and admin calls on --grpc-listen, and serves the web
dashboard, forges' webhooks (/webhooks/FORGE), /healthz and Prometheus
/metrics on --http-listen. The join token lets agents join (each then gets
its own credential); the admin token lets the command line in. Both come
from their flags, MONKEYCI_JOIN_TOKEN and MONKEYCI_ADMIN_TOKEN, or are
generated on first start, kept in the data dir and printed then only.
Repositories' secrets are encrypted with the master key in MONKEYCI_MASTER_KEY (base64 or hex of 32
bytes), or else in the data dir's master.key, made on first start: back it up.

With --pool it also sizes a pool of agents: every --pool-step it wants
ceil((queued + running builds) / builds per agent) + --pool-idle agents,
between --pool-min and --pool-max; it makes instances when builds wait,
drains agents idle past --pool-idle-timeout and destroys an instance only
once its agent is drained and holds no build. The provider's settings are
in --config (YAML):

  pool:
    docker: {name: default, work-dir: DIR, labels: "k=v"}
    oci: {compartment: OCID, subnet: OCID, availability-domain: AD,
          image: OCID, coordinator: HOST:PORT, instance-pool: OCID}
    static: {instances: [NAME, ...]}

'monkeyci pool status' shows the instances and the last decisions.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.JoinToken = orEnv(cfg.JoinToken, "MONKEYCI_JOIN_TOKEN")
			cfg.AdminToken = orEnv(cfg.AdminToken, "MONKEYCI_ADMIN_TOKEN")
			cfg.Database = orEnv(cfg.Database, "MONKEYCI_DATABASE")
			cfg.Version = version
			cfg.MasterKey = os.Getenv("MONKEYCI_MASTER_KEY")
			switch {
			case cfg.BuildTimeout < 0:
				return usageError(fmt.Errorf("--build-timeout %s: expected how long a build may run, like 1h, or 0 for no limit", cfg.BuildTimeout))
			case cfg.BuildTimeout == 0:
				cfg.BuildTimeout = -1 // none (the server's 0 is its default)
			}
			var err error
			if cfg.Pool, err = pf.poolConfig(cfg.DataDir); err != nil {
				return usageError(err)
			}
			if (cfg.HTTPCert == "") != (cfg.HTTPKey == "") {
				return usageError(errors.New("--http-cert and --http-key go together: give both"))
			}
			cfg.HTTPTLS = cfg.HTTPTLS || cfg.HTTPCert != "" // a certificate given is one to serve
			cfg.Logger = logLevel.newLogger("coordinator", stderr)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := server.Start(ctx, cfg)
			if err != nil {
				return failedError(err)
			}
			defer srv.Close()
			printServer(stdout, srv, cfg.DataDir)
			select {
			case <-ctx.Done():
				return nil
			case err := <-waitErr(srv):
				return failedError(err)
			}
		},
	}
	f := cmd.Flags()
	addServerFlags(f, &cfg)
	f.StringVar(&cfg.JoinToken, "join-token", "", "token agents join with (env MONKEYCI_JOIN_TOKEN)")
	f.StringVar(&cfg.AdminToken, "admin-token", "", "token of the admin API (env MONKEYCI_ADMIN_TOKEN)")
	f.BoolVar(&cfg.TLS, "tls", true, "serve gRPC over TLS with the data dir's CA")
	f.StringSliceVar(&cfg.TLSHosts, "tls-host", nil, "extra host names or IPs for the server certificate")
	f.BoolVar(&cfg.HTTPTLS, "http-tls", false, "serve the HTTP port over TLS: with --http-cert/--http-key, or else the data dir's CA-issued certificate")
	f.StringVar(&cfg.HTTPCert, "http-cert", "", "the HTTP port's certificate `FILE` (PEM, the chain after it: Let's Encrypt's fullchain.pem); read again when it changes")
	f.StringVar(&cfg.HTTPKey, "http-key", "", "the HTTP port's private key `FILE` (PEM: Let's Encrypt's privkey.pem)")
	_ = cmd.MarkFlagFilename("http-cert", "pem", "crt")
	_ = cmd.MarkFlagFilename("http-key", "pem", "key")
	f.DurationVar(&cfg.Lease, "lease", 30*time.Second, "how long an assignment lives without a heartbeat")
	f.DurationVar(&cfg.BuildTimeout, "build-timeout", coordinator.DefaultBuildTimeout, "how long a build may run before it is canceled, for repositories that set none (repos add --build-timeout); 0: no limit")
	f.DurationVar(&cfg.AgentGrace, "agent-grace", coordinator.DefaultAgentGrace, "how long an agent whose connection ended may take to come back before its builds are queued again")
	f.StringVar(&cfg.Advertise, "advertise", "", "where agents and the other coordinators reach this one's gRPC port, HOST:PORT, when several share a --database (default: the --grpc-listen address)")
	f.DurationVar(&cfg.LeaderTTL, "leader-ttl", leader.DefaultTTL, "with several coordinators on one --database: how long the leader's role lives without a renewal, the longest a standby waits for a leader that died")
	f.StringVar(&cfg.PublicURL, "public-url", "", "the HTTP port's address for people, for links in commit statuses (default: http://HTTP_LISTEN)")
	logLevel = addLogFlag(f)
	pf = addPoolFlags(f)
	return cmd
}

// printServer says where the coordinator listens and how the command line
// reaches it. A token is printed only by the start that made it: later
// starts (and tokens given by flag or environment) name where it is kept,
// so logs of restarts hold none.
func printServer(w io.Writer, srv *server.Server, dataDir string) {
	http := "HTTP"
	if srv.HTTPS {
		http = "HTTPS"
	}
	fmt.Fprintf(w, "coordinator: gRPC on %s, %s on %s\n", srv.GRPCAddr, http, srv.HTTPAddr)
	if srv.CAFile != "" {
		fmt.Fprintf(w, "  CA for agents and clients: %s\n", srv.CAFile)
	}
	if srv.NewJoinToken {
		fmt.Fprintf(w, "  join token:  %s\n", srv.JoinToken)
	}
	if srv.NewAdminToken {
		fmt.Fprintf(w, "  admin token: %s\n", srv.AdminToken)
	}
	printExport(w, srv, dataDir)
}

// printExport prints the line that points the command line at srv: with
// the admin token when this start made it, else naming where it is.
func printExport(w io.Writer, srv *server.Server, dataDir string) {
	export := "  export MONKEYCI_SERVER=" + srv.GRPCAddr
	if srv.CAFile != "" {
		export += " MONKEYCI_CA=" + srv.CAFile
	}
	if srv.NewAdminToken {
		export += " MONKEYCI_TOKEN=" + srv.AdminToken
	}
	fmt.Fprintln(w, export)
	if !srv.NewAdminToken {
		fmt.Fprintf(w, "  and MONKEYCI_TOKEN: the admin token (--admin-token, or the one printed on the first start, kept in %s)\n",
			filepath.Join(dataDir, "tokens.json"))
	}
}

func waitErr(srv *server.Server) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- srv.Wait() }()
	return ch
}
