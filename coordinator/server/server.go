// Package server runs a coordinator on its listeners: the stores under one
// data directory, the gRPC port (fleet protocol and admin API, TLS by
// default) and the HTTP port (/healthz, Prometheus /metrics, forges'
// webhooks under /webhooks/, and the web dashboard at every other path).
package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/coordinator/leader"
	"github.com/monkeyci/monkeyci/coordinator/logarchive"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/coordinator/tlsca"
	"github.com/monkeyci/monkeyci/coordinator/web"
	"github.com/monkeyci/monkeyci/forge/status"
	"github.com/monkeyci/monkeyci/proto/fleet"
	"github.com/monkeyci/monkeyci/secret"
)

// Config is what a coordinator process is told.
type Config struct {
	DataDir string
	// Database is where the state is kept: a PostgreSQL URL, shared by
	// several coordinators, or "" for SQLite in DataDir (OpenStore).
	Database   string
	GRPCListen string
	HTTPListen string
	// TLS serves gRPC with the data dir's CA-signed certificate for
	// TLSHosts (plus localhost).
	TLS      bool
	TLSHosts []string
	// HTTPTLS serves the HTTP port (dashboard, webhooks, /metrics,
	// /healthz) over TLS: with HTTPCert and HTTPKey (PEM files, a chain
	// first, read again when they change), or else with the data dir's
	// CA-issued certificate.
	HTTPTLS           bool
	HTTPCert, HTTPKey string
	// JoinToken and AdminToken: generated and kept in the data dir when empty.
	JoinToken  string
	AdminToken string
	Lease      time.Duration
	// BuildTimeout bounds a build's attempt for repositories that set
	// none (0: coordinator.DefaultBuildTimeout; negative: no bound).
	BuildTimeout time.Duration
	// AgentGrace is how long an agent whose stream ended may take to come
	// back before its builds are queued again (default 5 s).
	AgentGrace time.Duration
	Logger     hclog.Logger
	// MasterKey seals repositories' secrets (MONKEYCI_MASTER_KEY); empty:
	// the data dir's master.key, made on first start.
	MasterKey string
	// PublicURL is where people reach the HTTP port (links in commit
	// statuses); empty: http:// (https:// with HTTPTLS) and the HTTP
	// listener's address.
	PublicURL string
	// Blobs is the --blobs URL of the store of artifacts and caches (""
	// the data dir's folder blobs; package blob).
	Blobs string
	// Retention bounds what the blob store keeps (zero: all is kept).
	Retention coordinator.Retention
	// Pool runs an autoscaled agent pool (nil: none).
	Pool *PoolConfig
	// Advertise is where agents and the other coordinators reach this
	// one's gRPC port, when several share a database (default: the gRPC
	// listener's address).
	Advertise string
	// LeaderTTL is how long the leader's role lives without a renewal, when
	// several coordinators share a database (default leader.DefaultTTL).
	LeaderTTL time.Duration
	// Version is the program's, shown among the coordinators.
	Version string
}

// PoolConfig is an agent pool: its scaler's settings and its provider.
type PoolConfig struct {
	// Provider names the provider (docker, oci, static), for status.
	Provider string
	Scaler   pool.Config
	// Make makes the provider once the server listens: a provider that
	// starts agents tells them the address, the join token and the CA.
	Make func(ctx context.Context, s *Server) (pool.Provider, error)
	// Every is the time between scaling steps (default 5 s).
	Every time.Duration
	// Agent is what each pool agent offers, and Pause whether it pauses
	// waiting scripts: together they say how many builds one carries.
	Agent coordinator.Capacity
	Pause bool
}

// Server is a running coordinator.
type Server struct {
	Coordinator *coordinator.Coordinator
	GRPCAddr    string
	HTTPAddr    string
	// CAFile is the CA agents and clients trust ("" without TLS).
	CAFile string
	// HTTPS says the HTTP port speaks TLS.
	HTTPS      bool
	JoinToken  string
	AdminToken string
	// NewJoinToken and NewAdminToken say this start made the token (the
	// data dir's first): only then may it be printed.
	NewJoinToken, NewAdminToken bool
	TLSBundle                   *tlsca.Bundle

	grpc     *grpc.Server
	http     *http.Server
	statuses *status.Reporter
	store    Store
	logs     *logstore.Store // on the data dir's disk (nil: in the database)
	live     logarchive.Live // where running attempts' logs go
	done     chan error
	stop     context.CancelFunc
	// pool is closed when the pool's scaler has stopped (nil: no pool).
	pool chan struct{}
	// election chooses the leader among coordinators sharing the database
	// (nil: this one is alone, and leads).
	election *election
}

// Start opens the data dir, listens and serves until Close.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil { // an existing one too: it holds the keys
		return nil, fmt.Errorf("data dir: %w", err)
	}
	s := &Server{done: make(chan error, 1)}
	var hl, gl net.Listener // HTTP and gRPC
	defer func() {
		if err != nil {
			s.abandon(hl, gl)
		}
	}()
	keys, err := s.openState(ctx, cfg)
	if err != nil {
		return nil, err
	}
	blobs, err := blob.Open(ctx, cfg.Blobs, cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("--blobs: %w", err)
	}
	if IsPostgres(cfg.Database) && cfg.Blobs == "" {
		cfg.Logger.Warn("the blob store is this data dir's folder: coordinators sharing the database must share a blob store too (--blobs s3://... or oci://...), or the logs of ended builds, artifacts and caches one stores are not found by the others",
			"folder", filepath.Join(cfg.DataDir, "blobs"))
	}
	if hl, err = net.Listen("tcp", cfg.HTTPListen); err != nil {
		return nil, fmt.Errorf("--http-listen %s: %w", cfg.HTTPListen, err)
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://" + hl.Addr().String()
		if cfg.HTTPTLS {
			cfg.PublicURL = "https://" + hl.Addr().String()
		}
	}
	s.statuses = status.NewReporter(&status.Client{Logger: cfg.Logger.Named("status")}, cfg.Logger.Named("status"))
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = stop
	ccfg := coordinator.Config{
		Store: s.store, Logs: s.live, Blobs: blobs, Retention: cfg.Retention, Logger: cfg.Logger, JoinToken: s.JoinToken, AdminToken: s.AdminToken, Lease: cfg.Lease, BuildTimeout: cfg.BuildTimeout, AgentGrace: cfg.AgentGrace,
		Keys: keys, Statuses: s.statuses, PublicURL: cfg.PublicURL,
	}
	started := time.Now()
	// Alone, the coordinator lists itself: the leader, at its addresses.
	ccfg.Members = func(context.Context) ([]leader.Member, error) {
		return []leader.Member{{GRPC: cmp.Or(cfg.Advertise, s.GRPCAddr), HTTP: s.HTTPAddr, Version: cfg.Version, Started: started, Seen: time.Now(), Leader: true}}, nil
	}
	if shared, ok := s.store.(elected); ok {
		shared.Elected()
		s.election = &election{lease: shared, done: make(chan struct{})}
		s.election.leader = &leaderClient{election: s.election, tls: cfg.TLS, caFile: filepath.Join(cfg.DataDir, "tls", tlsca.CAFileName), token: s.AdminToken}
		s.election.me.ID = newMemberID()
		ccfg.Elected, ccfg.LeaderAddr, ccfg.LeaderAdmin = true, s.election.leaderAddr, s.election.leader.admin
		ccfg.Members, ccfg.Self = func(ctx context.Context) ([]leader.Member, error) {
			return shared.Members(ctx, time.Minute, cmp.Or(cfg.LeaderTTL, leader.DefaultTTL))
		}, s.election.me.ID
	}
	c, err := coordinator.New(runCtx, ccfg)
	if err != nil {
		return nil, err
	}
	s.Coordinator = c
	opts, tlsHL, err := s.useTLS(cfg, c.Interceptors(), hl)
	if err != nil {
		return nil, err
	}
	hl = tlsHL
	// Agents ping a stream that says nothing for a while (so that they
	// find a coordinator that hangs, and go to the next one): allowed.
	opts = append(opts, grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}))
	s.grpc = grpc.NewServer(opts...)
	fleet.RegisterFleetServer(s.grpc, c.FleetServer())
	fleet.RegisterAdminServer(s.grpc, c.AdminServer())
	if gl, err = net.Listen("tcp", cfg.GRPCListen); err != nil {
		return nil, fmt.Errorf("--grpc-listen %s: %w", cfg.GRPCListen, err)
	}
	s.GRPCAddr, s.HTTPAddr = gl.Addr().String(), hl.Addr().String()
	handler, err := s.httpHandler(runCtx, cfg)
	if err != nil {
		return nil, err
	}
	s.http = &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: cfg.Logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}

	if s.election == nil {
		if cfg.Pool != nil {
			if err := s.startPool(runCtx, cfg); err != nil {
				return nil, err
			}
		}
		go func() { _ = c.Run(runCtx) }()
	} else {
		s.elect(runCtx, cfg)
	}
	go func() { _ = s.http.Serve(hl) }()
	go func() { s.done <- s.grpc.Serve(gl) }()
	return s, nil
}

// abandon undoes a start that failed: it closes the listeners opened (nil:
// none), stops what runs on the server's context, and closes the stores.
func (s *Server) abandon(listeners ...net.Listener) {
	for _, l := range listeners {
		if l != nil {
			l.Close()
		}
	}
	if s.stop != nil {
		s.stop()
	}
	s.closeStores()
}

// openState reads (or makes) the tokens, opens the stores and loads the
// keyring that seals secrets.
func (s *Server) openState(ctx context.Context, cfg Config) (*secret.Keyring, error) {
	var err error
	if s.JoinToken, s.AdminToken, s.NewJoinToken, s.NewAdminToken, err = tokens(cfg); err != nil {
		return nil, err
	}
	if s.store, err = OpenStore(ctx, cfg.Database, cfg.DataDir); err != nil {
		return nil, err
	}
	if shared, ok := s.store.(sharedLogs); ok {
		s.live = shared.LiveLogs()
	} else {
		if s.logs, err = logstore.Open(filepath.Join(cfg.DataDir, "logs")); err != nil {
			return nil, err
		}
		s.live = s.logs
	}
	return secret.LoadKeyring(cfg.DataDir, cfg.MasterKey)
}

// useTLS adds TLS to what cfg asks it of: gRPC's server options and the
// HTTP listener. The data dir's CA and certificate serve both, made once,
// unless HTTP has a key pair of its own.
func (s *Server) useTLS(cfg Config, opts []grpc.ServerOption, hl net.Listener) ([]grpc.ServerOption, net.Listener, error) {
	var bundle *tlsca.Bundle
	ensureBundle := func() (*tls.Config, error) {
		if bundle == nil {
			var err error
			if bundle, err = tlsca.Ensure(filepath.Join(cfg.DataDir, "tls"), cfg.TLSHosts); err != nil {
				return nil, err
			}
		}
		return bundle.ServerConfig(), nil
	}
	if cfg.TLS {
		tc, err := ensureBundle()
		if err != nil {
			return nil, nil, err
		}
		s.TLSBundle, s.CAFile = bundle, bundle.CAFile()
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	if cfg.HTTPTLS {
		tc, err := httpTLS(cfg, ensureBundle)
		if err != nil {
			return nil, nil, err
		}
		hl, s.HTTPS = tls.NewListener(hl, tc), true
	}
	return opts, hl, nil
}

// httpHandler routes the HTTP port: /healthz, /metrics, the forges'
// webhooks, and the dashboard at every other path.
func (s *Server) httpHandler(ctx context.Context, cfg Config) (http.Handler, error) {
	c := s.Coordinator
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.Handle("GET /metrics", c.MetricsHandler())
	mux.Handle("POST /webhooks/{forge}", c.WebhookHandler())
	mux.HandleFunc("/webhooks/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "webhooks are POSTed", http.StatusMethodNotAllowed)
	})
	dash, err := web.New(ctx, web.Config{Coordinator: c, Logs: c.Logs(), DataDir: cfg.DataDir, Logger: cfg.Logger.Named("web")})
	if err != nil {
		return nil, err
	}
	mux.Handle("/", dash)
	return mux, nil
}

// elect takes part in choosing the leader among the coordinators sharing
// the database; while this one leads, it runs the pool (if any) and what
// the coordinator runs as the leader.
func (s *Server) elect(ctx context.Context, cfg Config) {
	e := s.election
	e.me = leader.Member{ID: e.me.ID, GRPC: cmp.Or(cfg.Advertise, s.GRPCAddr), HTTP: s.HTTPAddr,
		Version: cfg.Version, Started: time.Now()}
	log := cfg.Logger.Named("leader")
	e.elector = leader.NewElector(e.lease, e.me, cfg.LeaderTTL, log, func(ctx context.Context, term int64) {
		if cfg.Pool != nil {
			if err := s.startPool(ctx, cfg); err != nil {
				log.Error("could not start the pool", "error", err)
			}
		}
		// Leading fails when the store does (the database away): try again
		// while the role is this coordinator's, never hold it idle.
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
			err := s.Coordinator.Lead(ctx)
			if ctx.Err() != nil {
				break
			}
			log.Error("could not lead (is the database reachable?); trying again", "error", err, "in", wait)
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if s.pool != nil {
			<-s.pool // the scaler stops with ctx
		}
	})
	e.run(ctx)
}

// startPool makes the pool's provider and runs its scaler until the
// server closes.
func (s *Server) startPool(ctx context.Context, cfg Config) error {
	pc := cfg.Pool
	provider, err := pc.Make(ctx, s)
	if err != nil {
		return fmt.Errorf("--pool %s: %w", pc.Provider, err)
	}
	sc := pc.Scaler
	if sc.BuildsPerAgent == 0 {
		sc.BuildsPerAgent = s.Coordinator.BuildsPer(pc.Agent, pc.Pause)
	}
	sc.Logger = cfg.Logger.Named("pool")
	sc.Decided = s.Coordinator.PoolDecided
	scaler, err := pool.NewScaler(ctx, sc, provider, s.Coordinator.PoolFleet(), s.store)
	if err != nil {
		return err
	}
	s.Coordinator.UsePool(scaler, coordinator.PoolInfo{Provider: pc.Provider, Min: sc.Min, Max: sc.Max, Idle: sc.Idle})
	s.pool = make(chan struct{})
	go func() {
		defer close(s.pool)
		scaler.Run(ctx, pc.Every)
	}()
	return nil
}

// ClientTLS is a client configuration trusting this server (nil without TLS).
func (s *Server) ClientTLS() *tls.Config {
	if s.TLSBundle == nil {
		return nil
	}
	return s.TLSBundle.ClientConfig("localhost")
}

// Wait blocks until the gRPC server stops.
func (s *Server) Wait() error { return <-s.done }

// Close stops serving and closes the stores.
func (s *Server) Close() {
	s.stop()
	if s.election != nil {
		<-s.election.done // it has stopped leading and resigned
		s.election.leader.close()
	}
	if s.pool != nil {
		<-s.pool // its last step saves to the store: before the store closes
	}
	s.grpc.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	_ = s.statuses.Close(ctx) // statuses on their way get a moment to go
	s.closeStores()
}

func (s *Server) closeStores() {
	if s.logs != nil {
		s.logs.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// tokens returns the join and admin tokens: given, or kept in the data
// dir (made on first start), so a restart keeps them. newJoin and
// newAdmin say which were made now.
func tokens(cfg Config) (join, admin string, newJoin, newAdmin bool, err error) {
	path := filepath.Join(cfg.DataDir, "tokens.json")
	var kept struct {
		Join  string `json:"join"`
		Admin string `json:"admin"`
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &kept); err != nil {
			return "", "", false, false, fmt.Errorf("%s: %w", path, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", "", false, false, err
	}
	newJoin = cfg.JoinToken == "" && kept.Join == ""
	newAdmin = cfg.AdminToken == "" && kept.Admin == ""
	if newJoin || newAdmin {
		if newJoin {
			kept.Join = coordinator.NewID() + coordinator.NewID()
		}
		if newAdmin {
			kept.Admin = coordinator.NewID() + coordinator.NewID()
		}
		data, _ := json.Marshal(kept)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return "", "", false, false, fmt.Errorf("keeping the tokens: %w", err)
		}
	}
	join, admin = cfg.JoinToken, cfg.AdminToken
	if join == "" {
		join = kept.Join
	}
	if admin == "" {
		admin = kept.Admin
	}
	return join, admin, newJoin, newAdmin, nil
}
