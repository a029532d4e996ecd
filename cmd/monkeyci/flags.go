package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/pflag"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/server"
)

// The flags several commands share, each group defined once: the same
// names, defaults and help wherever they appear.

// logFlag is --log-level: how much a command's logger says.
type logFlag struct{ level string }

// defaultLogLevel is every command's: what a server does is worth a line.
const defaultLogLevel = "info"

func addLogFlag(f *pflag.FlagSet) *logFlag {
	l := &logFlag{}
	f.StringVar(&l.level, "log-level", defaultLogLevel, "log level: trace, debug, info, warn, error")
	return l
}

// newLogger is a command's logger: named name, writing to w at --log-level.
func (l *logFlag) newLogger(name string, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: w, Level: hclog.LevelFromString(l.level)})
}

// addServerFlags adds where a coordinator keeps its state and listens,
// into cfg: --data-dir, --grpc-listen and --http-listen.
func addServerFlags(f *pflag.FlagSet, cfg *server.Config) {
	f.StringVar(&cfg.DataDir, "data-dir", defaultDataDir(), "where state, logs and the CA are kept")
	f.StringVar(&cfg.Database, "database", "", "where builds, events, repositories, secrets (sealed) and tokens are kept: a PostgreSQL URL, postgres://USER:PASSWORD@HOST:5432/DB, which several coordinators may share (env MONKEYCI_DATABASE); default: SQLite in the data dir")
	f.StringVar(&cfg.GRPCListen, "grpc-listen", "127.0.0.1:7433", "address for agents and the admin API")
	f.StringVar(&cfg.HTTPListen, "http-listen", "127.0.0.1:7480", httpListenHelp)
	cfg.Retention = coordinator.DefaultRetention
	f.Var((*daysFlag)(&cfg.Retention.Artifacts), "retain-artifacts", "how long builds' artifacts are kept after they were saved, like 30d or 12h (0: for ever)")
	f.Var((*daysFlag)(&cfg.Retention.Logs), "retain-logs", "how long the logs of ended builds are kept, like 30d or 12h (0: for ever)")
	f.Var((*sizeFlag)(&cfg.Retention.CacheMaxSize), "cache-max-size", "the most each repository's caches take in the blob store, like 10g (0: no bound); past it the least recently used go")
	f.StringVar(&cfg.Blobs, "blobs", "", "where builds' artifacts and caches, and the logs of ended builds, are kept: file:///DIR; s3://BUCKET?endpoint=HOST:PORT[&region=R][&insecure=1] with the keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; or oci://NAMESPACE/BUCKET[?region=R][&config=FILE][&profile=P][&principal=instance] with an OCI API key (default ~/.oci/config) or the instance principal (default: DATA_DIR/blobs)")
}

// httpListenHelp names everything the HTTP port serves.
const httpListenHelp = "address of the HTTP port: the web dashboard, forges' webhooks (/webhooks/FORGE), /healthz and Prometheus /metrics"

func defaultDataDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return dir + "/monkeyci/coordinator"
	}
	return "monkeyci-data"
}

// capacityFlags are what an agent offers its builds: --cpus, --memory,
// --pids and --pause.
type capacityFlags struct {
	cpus      float64
	memory    string
	pids      int64
	pause     bool
	cacheSize string
	// cacheBytes is --cache-size, read by resources.
	cacheBytes  int64
	mirrorSize  string
	mirrorBytes int64 // --mirror-size, read by resources
}

func addCapacityFlags(f *pflag.FlagSet) *capacityFlags {
	c := &capacityFlags{}
	f.Float64Var(&c.cpus, "cpus", float64(runtime.NumCPU()), "CPUs the agent offers")
	f.StringVar(&c.memory, "memory", "", "memory the agent offers, like 8g (default: the machine's)")
	f.Int64Var(&c.pids, "pids", agent.DefaultPids, "processes each build container may have: the default, and the most a job's pids may ask")
	f.BoolVar(&c.pause, "pause", true, "pause script containers while they await their jobs")
	f.StringVar(&c.cacheSize, "cache-size", "10g", "disk the agent keeps caches in, in front of the coordinator's store; past it the least recently used go (0: no bound)")
	f.StringVar(&c.mirrorSize, "mirror-size", "10g", "disk the agent keeps a git mirror of each repository in (with the git program); past it the least recently used go (0: no bound)")
	return c
}

// resources checks --cpus, --memory and --pids, and is the CPUs and
// memory they offer.
func (c *capacityFlags) resources() (agent.Resources, error) {
	r, err := capacityOf(c.cpus, c.memory)
	if err != nil {
		return r, err
	}
	if c.pids < 1 {
		return r, fmt.Errorf("--pids %d: expected a number of processes of at least 1", c.pids)
	}
	if c.cacheBytes, err = agent.ParseBytes(c.cacheSize); err != nil {
		return r, fmt.Errorf("--cache-size: %w", err)
	}
	if c.mirrorBytes, err = agent.ParseBytes(c.mirrorSize); err != nil {
		return r, fmt.Errorf("--mirror-size: %w", err)
	}
	return r, nil
}

// capacityOf is --cpus and --memory (or flags like them) as resources; no
// memory is the machine's.
func capacityOf(cpus float64, memory string) (agent.Resources, error) {
	if !(cpus > 0) || math.IsInf(cpus, 0) {
		return agent.Resources{}, fmt.Errorf("--cpus %v: expected a number above 0, like 2 or 0.5", cpus)
	}
	// Thousandths, rounded as a job's cpus are (pipeline.Job.MilliCPUs).
	r := agent.Resources{MilliCPUs: int64(math.Round(cpus * 1000))}
	if memory == "" {
		total, err := agent.MachineMemory()
		if err != nil {
			return r, fmt.Errorf("reading the machine's memory (give --memory): %w", err)
		}
		r.Memory = total
		return r, nil
	}
	m, err := agent.ParseBytes(memory)
	if err != nil || m <= 0 {
		return r, fmt.Errorf("--memory %q: expected a size like 512m or 8g", memory)
	}
	r.Memory = m
	return r, nil
}

// orEnv is a flag's value, or the environment variable env's when the
// flag is empty.
func orEnv(v, env string) string {
	if v != "" {
		return v
	}
	return os.Getenv(env)
}

// daysFlag is a duration that may be given in days too ("30d").
type daysFlag time.Duration

func (d *daysFlag) String() string {
	t := time.Duration(*d)
	if t > 0 && t%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", t/(24*time.Hour))
	}
	return t.String()
}

func (d *daysFlag) Set(s string) error {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return fmt.Errorf("%q: expected a number of days like 30d, or a duration like 12h", s)
		}
		*d = daysFlag(time.Duration(n) * 24 * time.Hour)
		return nil
	}
	t, err := time.ParseDuration(s)
	if err != nil || t < 0 {
		return fmt.Errorf("%q: expected a number of days like 30d, or a duration like 12h", s)
	}
	*d = daysFlag(t)
	return nil
}

func (d *daysFlag) Type() string { return "duration" }

// sizeFlag is a number of bytes given as a size ("10g").
type sizeFlag int64

func (s *sizeFlag) String() string { return agent.FormatBytes(int64(*s)) }

func (s *sizeFlag) Set(v string) error {
	n, err := agent.ParseBytes(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

func (s *sizeFlag) Type() string { return "size" }
