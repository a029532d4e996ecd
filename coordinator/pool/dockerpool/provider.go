// Package dockerpool is the pool.Provider whose instances are containers on
// the local Docker engine, each running one agent: a whole autoscaled fleet
// on one machine.
//
// An agent in a container starts its builds' containers as siblings on the
// same engine (its socket is mounted in), and bind-mounts its own files
// (the job API socket, sources, job files) into them. The engine reads bind
// sources on the host, so each agent's folder is mounted at the same path
// inside its container as on the host: what the agent sees is what the
// engine finds.
package dockerpool

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/coordinator/pool"
)

// LabelPool marks every container of a pool with the pool's name. It is
// not under the agents' io.monkeyci. prefix: an agent sweeps what carries
// its io.monkeyci.agent label, and must never sweep its own container.
const LabelPool = "monkeyci.pool"

// Engine is the container engine as the pool uses it: agent/docker's
// Engine, which also lists containers with their names and states.
type Engine interface {
	engine.Runtime
	Containers(ctx context.Context, labels map[string]string) ([]engine.ContainerInfo, error)
}

// Config says how to make the pool's agents.
type Config struct {
	// Engine makes the containers, on the engine DockerSocket names.
	Engine Engine
	// Binary is the static monkeyci binary put in the agent image
	// (default: this process's executable).
	Binary string
	// Pool names the pool: its containers are monkeyci-pool-<Pool>-<hex>
	// and carry LabelPool=Pool.
	Pool string

	// What each agent is told.
	Coordinator string // gRPC address, reached over the host's network; a wildcard host (0.0.0.0, ::) is dialed on 127.0.0.1
	JoinToken   string
	TLS         bool
	CAFile      string // the coordinator's CA (required with TLS)
	CPUs        float64
	Memory      string // like "4g"; "" for the machine's
	Labels      string // "k=v,..."
	Pause       bool

	// WorkDir is a host directory under which each agent gets its own
	// folder, mounted at the same path in its container.
	WorkDir string
	// DockerSocket is the host path of the socket of the engine that
	// Engine talks to, mounted into each agent (default: DOCKER_HOST's path
	// when it is a unix socket, else /var/run/docker.sock).
	DockerSocket string
	// StopGrace is how long Destroy lets an agent exit after SIGTERM
	// before killing it (default 30 s).
	StopGrace time.Duration

	Logger hclog.Logger
}

// Provider runs a pool's agents as containers. Safe for concurrent use.
type Provider struct {
	cfg   Config
	image string
}

var _ pool.Provider = (*Provider)(nil)

// New checks cfg, makes the agent image from the binary (once per binary;
// the agent's own image, which its scripts then find made) and returns
// the provider.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("docker pool %s: work dir: %w", cfg.Pool, err)
	}
	image, err := engine.EnsureAgentImage(ctx, cfg.Engine, cfg.Binary)
	if err != nil {
		return nil, fmt.Errorf("docker pool %s: %w", cfg.Pool, err)
	}
	return &Provider{cfg: cfg, image: image}, nil
}

func (c Config) withDefaults() (Config, error) {
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	c.Logger = c.Logger.Named("dockerpool")
	if c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("docker pool: finding own binary: %w", err)
		}
		c.Binary = exe
	}
	c.Coordinator = loopbackIfWildcard(c.Coordinator)
	if c.DockerSocket == "" {
		c.DockerSocket = "/var/run/docker.sock"
		if sock, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
			c.DockerSocket = sock
		}
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 30 * time.Second
	}
	if c.WorkDir != "" {
		abs, err := filepath.Abs(c.WorkDir)
		if err != nil {
			return c, fmt.Errorf("docker pool: work dir: %w", err)
		}
		c.WorkDir = abs
	}
	return c, nil
}

// poolName is what a container name and a label value both accept.
var poolName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}$`)

func (c Config) validate() error {
	var errs []error
	if c.Engine == nil {
		errs = append(errs, errors.New("an engine is required"))
	}
	if !poolName.MatchString(c.Pool) {
		errs = append(errs, fmt.Errorf("pool name %q: want 1 to 32 of a-z, A-Z, 0-9, _ . - (not first)", c.Pool))
	}
	if c.Coordinator == "" {
		errs = append(errs, errors.New("a coordinator address is required"))
	}
	if c.JoinToken == "" {
		errs = append(errs, errors.New("a join token is required"))
	}
	if c.TLS && c.CAFile == "" {
		errs = append(errs, errors.New("TLS needs the coordinator's CA file"))
	}
	if c.CAFile != "" && !filepath.IsAbs(c.CAFile) {
		errs = append(errs, fmt.Errorf("CA file %q is not an absolute path", c.CAFile))
	}
	if c.CPUs < 0 {
		errs = append(errs, fmt.Errorf("negative CPUs %v", c.CPUs))
	}
	if c.WorkDir == "" {
		errs = append(errs, errors.New("a work dir is required"))
	} else if n := socketPathLen(c.WorkDir, c.Pool); n > maxSocketPath {
		errs = append(errs, fmt.Errorf("work dir %s is too long: the agents' job API sockets under it would take %d bytes, over the %d a socket path may have", c.WorkDir, n, maxSocketPath))
	}
	if !filepath.IsAbs(c.DockerSocket) {
		errs = append(errs, fmt.Errorf("docker socket %q is not an absolute path", c.DockerSocket))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("docker pool config: %w", err)
	}
	return nil
}

// An agent serves each build's job API on a socket in its temp dir, at
// TMPDIR/mci-<8 hex agent>/<os.MkdirTemp's name, up to 10 digits>/job.sock,
// and a socket path has at most maxSocketPath bytes. A work dir that leaves
// no room would fail every build, so New refuses it.
const socketPathSuffix = len("/tmp/mci-12345678/") + len("4294967295") + len("/job.sock")

// maxSocketPath is the longest path a unix socket address holds: the
// kernel's sun_path less its closing NUL (107 bytes on Linux), as the agent
// checks it (agent.MaxSocketPath).
const maxSocketPath = len(syscall.RawSockaddrUnix{}.Path) - 1

func socketPathLen(workDir, pool string) int {
	return len(filepath.Join(workDir, instancePrefix(pool)+strings.Repeat("0", idHexLen))) + socketPathSuffix
}

// loopbackIfWildcard turns a listen address on every interface, as a
// server reports it, into one an agent on this machine can dial and check
// the coordinator's certificate against (which names 127.0.0.1).
func loopbackIfWildcard(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr // validate or the agent says what is wrong
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}
