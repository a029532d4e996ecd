// Package agent runs builds: a build's workspace volume, its script
// container, the job API the script drives, the job containers, and the
// pausing of the script while its jobs run. Containers are reached through
// the Runtime interface of agent/engine; the Docker implementation is in
// agent/docker.
package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
)

// Container and volume labels (docs/architecture.md, Names): everything the runner
// makes carries them, so a crash can always be cleaned up.
const (
	labelPrefix = "io.monkeyci."
	LabelBuild  = "io.monkeyci.build"
	LabelJob    = "io.monkeyci.job"
	LabelRole   = "io.monkeyci.role"
	LabelAgent  = engine.LabelAgent // the docker pool sweeps by it too
)

// Config is what a Runner needs. Zero values take the defaults noted.
type Config struct {
	Runtime Runtime
	// Ledger is the agent's capacity, shared by every build it runs.
	Ledger *Ledger
	Logger hclog.Logger
	// Binary is the static monkeyci binary run in script containers
	// (default: this process's executable).
	Binary string
	// StateDir holds per-build sockets and job files (default: a temp dir).
	StateDir string
	// CacheDir keeps caches across builds of a repository: the agent's
	// tier, in front of the fleet's store (BuildSpec.Blobs).
	CacheDir string
	// CacheSize bounds CacheDir: past it the least recently used caches
	// go (0: no bound).
	CacheSize int64
	// Pause freezes script containers while they await their jobs.
	Pause bool
	// Script is what a running script container reserves (default 1 CPU, 1 GB);
	// a paused one keeps only the memory.
	Script Resources
	// AgentID labels what this agent makes (default "local").
	AgentID string
	// Pids bounds the processes of each build container (default
	// DefaultPids): the default and the most a job may ask for.
	Pids int64
	// Arch is the machine architecture of the jobs this agent runs, as
	// MonkeyCI names it (default: this machine's, "amd" or "arm").
	Arch string
}

// BuildSpec says what to build.
type BuildSpec struct {
	ID string
	// Repo keys the caches kept across builds.
	Repo string
	// Cache is the scope of the caches the build reads and writes
	// (default LocalScope).
	Cache CacheScope
	// Blobs keeps the build's artifacts and caches in the fleet's store
	// (nil: on this agent's disk only).
	Blobs Blobs
	// Source is the directory copied into the workspace.
	Source string
	// Snapshot says Source is the build's own snapshot of a checkout,
	// which nothing changes until the build ends: the workspace is then an
	// overlay on it, written to in a layer of the build's own, and nothing
	// is copied.
	Snapshot bool
	// Release, if set, is called once no container of the build is left,
	// before its end is told: a Snapshot's checkout is then no overlay's
	// lower layer, and the next build may check out there, while this one
	// removes the rest of what it made. Not called when a container could
	// not be removed.
	Release func()
	// Fetch, if set, fills Source; it runs while the workspace volume and
	// the script container are made, and the build fails if it fails.
	Fetch  func(ctx context.Context) error
	Params map[string]string
	// Facts, if set, are what the build knows of its source (branch, tag,
	// commit, changed files); the script reads them with the parameters
	// (facts.go). Fetch may fill them in: they are read once it has ended.
	Facts *pipeline.Facts
	// Secrets reach the job containers as environment variables (a job's
	// own env wins). Masking them in what is reported is the reporter's.
	Secrets map[string]string
	// Reserved, if set, is called once the build's script holds its share
	// of the ledger. Until then the ledger does not show the build, so
	// whoever reports the agent's free capacity counts that share as taken.
	Reserved func()
	// Unblockable says someone can unblock the build's blocked jobs
	// (Runner.Unblock): a coordinator does, a local run has nobody to.
	Unblockable bool
}

// Reporter receives a build's events and output as they happen. Calls come
// from several goroutines; the implementation serialises what it needs.
type Reporter interface {
	Event(e events.Event)
	// Output is a slice of a job's output ("out" or "err"); job "" is the
	// script container. data is valid only during the call: an
	// implementation that keeps it copies it.
	Output(job, stream string, data []byte)
}

// Outcome is how a build ended.
type Outcome struct {
	Result   events.Result `json:"result"`
	Jobs     []JobOutcome  `json:"jobs"` // in the order they were started or skipped
	Duration time.Duration `json:"duration"`
	Paused   time.Duration `json:"paused"` // total time the script container was frozen
	Pauses   int           `json:"pauses"`
	// ScriptExit is the script container's exit code.
	ScriptExit int `json:"script-exit"`
}

// JobOutcome is how one job ended.
type JobOutcome struct {
	ID       string        `json:"id"`
	Result   events.Result `json:"result"`
	Exit     int           `json:"exit"`
	Message  string        `json:"message,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Runner runs builds through a Runtime. Safe for concurrent use: builds run
// side by side share the ledger.
type Runner struct {
	cfg Config

	imageMu sync.Mutex
	image   string // made once; a failure (or a cancel) is tried again
	binary  string // scriptBinary's copy, made once

	tier *tier // the caches on this agent's disk

	mu     sync.Mutex
	builds map[string]*build // running, by id: what Unblock reaches
}

// NewRunner checks cfg and fills its defaults.
func NewRunner(cfg Config) (*Runner, error) {
	if cfg.Runtime == nil || cfg.Ledger == nil {
		return nil, errors.New("runner: a runtime and a ledger are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("runner: finding own binary: %w", err)
		}
		cfg.Binary = exe
	}
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(os.TempDir(), "monkeyci")
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.StateDir, "caches")
	}
	if cfg.Script == (Resources{}) {
		cfg.Script = Resources{MilliCPUs: 1000, Memory: 1 << 30}
	}
	if cfg.AgentID == "" {
		cfg.AgentID = "local"
	}
	if cfg.Pids < 0 {
		return nil, fmt.Errorf("runner: a negative process limit (%d)", cfg.Pids)
	}
	if cfg.Arch == "" {
		cfg.Arch = pipeline.ArchOf(runtime.GOARCH)
	}
	if cfg.Pids == 0 {
		cfg.Pids = DefaultPids
	}
	if cfg.CacheSize < 0 {
		return nil, fmt.Errorf("runner: a negative cache size (%d)", cfg.CacheSize)
	}
	return &Runner{cfg: cfg, builds: map[string]*build{}, tier: &tier{dir: cfg.CacheDir, max: cfg.CacheSize}}, nil
}

// Prepare makes the script container's image, once. Run calls it too;
// calling it first takes the work off the first build's clock.
func (r *Runner) Prepare(ctx context.Context) (string, error) {
	r.imageMu.Lock()
	defer r.imageMu.Unlock()
	if r.image == "" {
		image, err := engine.EnsureAgentImage(ctx, r.cfg.Runtime, r.cfg.Binary)
		if err != nil {
			return "", err
		}
		r.image = image
	}
	return r.image, nil
}

// Close removes what the runner's builds left behind although their
// cleanup ran (a network a container held a moment too long), and the
// builds' socket folders' parent, empty once none runs. Call it once no
// build runs.
func (r *Runner) Close(ctx context.Context) error {
	_ = os.Remove(r.apiRoot())
	if _, err := engine.SweepNetworks(ctx, r.cfg.Runtime, map[string]string{LabelAgent: r.cfg.AgentID}); err != nil {
		return fmt.Errorf("closing the runner: %w", err)
	}
	return nil
}

// Script is what a running script container reserves.
func (r *Runner) Script() Resources { return r.cfg.Script }

// Pauses says whether the runner pauses waiting scripts.
func (r *Runner) Pauses() bool { return r.cfg.Pause }

// Sweep removes what a killed run of this agent left behind: the
// containers and volumes that carry its label, its builds' job API
// sockets (apiRoot) and their files under the state dir. Call it before
// the first build, when the agent holds none and owns its state dir.
func (r *Runner) Sweep(ctx context.Context) (int, error) {
	n, err := engine.SweepAgent(ctx, r.cfg.Runtime, r.cfg.AgentID)
	if err != nil {
		return n, err
	}
	for _, dir := range []string{r.apiRoot(), filepath.Join(r.cfg.StateDir, "builds")} {
		if err := os.RemoveAll(dir); err != nil {
			return n, fmt.Errorf("removing leftover build files: %w", err)
		}
	}
	return n, nil
}

// apiRoot holds the job API sockets of the agent's builds, one folder
// each: under the temp dir, for a short socket path, and named after the
// agent (hashed, as short), so that Sweep finds the folders a killed run
// left and no other agent's. Every byte counts: a socket's path is at most
// MaxSocketPath long, and a docker pool agent's temp dir is deep.
func (r *Runner) apiRoot() string {
	h := fnv.New32a()
	h.Write([]byte(r.cfg.AgentID))
	return filepath.Join(os.TempDir(), fmt.Sprintf("mci-%08x", h.Sum32()))
}

// ownDir makes dir (0700) unless it is there, and checks that it is a
// directory of this user's that no one else may enter: its name in the
// shared temp dir is predictable, and another user who made it first
// would hold the builds' sockets.
func ownDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	switch {
	case !info.IsDir():
		return fmt.Errorf("%s is not a directory: remove it", dir)
	case ok && int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to another user (uid %d): remove it", dir, st.Uid)
	case info.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s may be entered by others (mode %v): remove it", dir, info.Mode().Perm())
	}
	return nil
}
