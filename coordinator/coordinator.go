package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/blob"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/coordinator/leader"
	"github.com/monkeyci/monkeyci/coordinator/logarchive"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Defaults of the fleet protocol (docs/architecture.md, The fleet protocol).
const (
	DefaultLease       = 30 * time.Second
	DefaultMaxAttempts = 3
	// DefaultBuildTimeout bounds a build's attempt when neither the
	// coordinator nor its repository says.
	DefaultBuildTimeout = time.Hour
)

// LogStore keeps build logs by byte offset: on disk (coordinator/logstore)
// or, with a blob store, there too once their attempt has ended
// (coordinator/logarchive).
type LogStore interface {
	// Write stores data at offset and returns the stream's stored size.
	Write(key LogKey, offset int64, data []byte) (int64, error)
	// Size is a stream's stored size (0 when nothing is stored).
	Size(key LogKey) (int64, error)
	// Sizes lists an attempt's streams with their stored sizes.
	Sizes(build string, attempt int) ([]logstore.Stream, error)
	// ReadAt reads stored bytes of a stream at an offset, like io.ReaderAt.
	ReadAt(key LogKey, offset int64, p []byte) (int, error)
	// Follow copies a stream to w from an offset on, waiting for writes
	// until ended is closed and all is copied, or ctx ends.
	Follow(ctx context.Context, key LogKey, from int64, w io.Writer, ended <-chan struct{}) error
}

var (
	_ LogStore = (*logstore.Store)(nil)
	_ LogStore = (*logarchive.Store)(nil)
)

// LogKey names one output stream of one attempt of a build.
type LogKey = logstore.Key

// Config is what a Coordinator needs; zero values take the defaults.
type Config struct {
	Store Store
	// Logs is where the logs of running builds are written: this
	// coordinator's disk, or the database several share.
	Logs logarchive.Live
	// Retention bounds what Blobs keeps (retention.go; zero: all is kept).
	Retention Retention
	// Blobs keeps builds' artifacts and caches (archives.go), and the
	// logs of attempts that ended (logarchive.go); nil: none, and logs
	// stay in Logs.
	Blobs  blob.Store
	Logger hclog.Logger
	// JoinToken lets a new agent join; it is exchanged for a credential.
	JoinToken string
	// AdminToken may call every admin method.
	AdminToken string
	// Lease is how long an assignment lives without a heartbeat.
	Lease time.Duration
	// MaxAttempts bounds the dispatches of one build before it ends in
	// error ("agent lost").
	MaxAttempts int
	// BuildTimeout is how long an attempt of a build may run before it is
	// canceled, for a repository that sets none (Repo.BuildTimeout): 0 is
	// DefaultBuildTimeout, a negative one none.
	BuildTimeout time.Duration
	// AgentGrace is how long an agent whose stream ended may take to come
	// back before its builds are queued again (recovery.go).
	AgentGrace time.Duration
	// Script is a script container's reservation, and Job a default job's:
	// together they say what a build needs free on an agent to be sent there.
	Script Capacity
	Job    Capacity
	Now    func() time.Time
	// Keys seal repositories' secrets at rest (nil: none can be kept).
	Keys Sealer
	// Statuses reports builds started by a forge back to it (nil: not).
	Statuses StatusReporter
	// PublicURL is where people reach the coordinator's HTTP port: the
	// link in commit statuses (default: none).
	PublicURL string
	// Elected says the coordinator shares its store with others and leads
	// only within Lead (leadership.go); until then it stands by. Unset, it
	// leads from New on.
	Elected bool
	// LeaderAddr says where the leader takes agents, for a standby's
	// redirects ("" or nil: not known).
	LeaderAddr func() string
	// LeaderAdmin is the leader's admin API, with this coordinator's admin
	// token: a standby asks it for what only the leader can do.
	LeaderAdmin func(ctx context.Context) (fleet.AdminClient, error)
	// Members lists the coordinators sharing the store, and Self names
	// this one among them (nil: it is alone).
	Members func(ctx context.Context) ([]leader.Member, error)
	Self    string
}

// Capacity is an amount of CPU and memory.
type Capacity struct {
	MilliCPUs int64 `json:"milli-cpus"`
	Memory    int64 `json:"memory"`
}

func (c Capacity) covers(need Capacity) bool {
	return c.MilliCPUs >= need.MilliCPUs && c.Memory >= need.Memory
}

// Coordinator is the heart of the fleet: it serves agents and admins,
// writes the store and composes parts that each own their state, behind a
// lock of their own:
//
//   - the dispatcher (dispatcher.go): the queue, and the moves of builds
//     between it, the agents and the leases;
//   - the agent registry (agents.go): the connected agents, the lost ones
//     in their grace, the builds each holds and the room each has, which
//     placement (placement.go, a function of the queue and the rooms
//     alone) reads;
//   - the lease table (leases.go): the running attempts, what fences
//     agents' reports;
//   - the commit statuses (status.go), sent back to forges.
//
// Lock order: the dispatcher's, then the registry's or the lease table's,
// never those two together; the Coordinator has no lock of its own, and
// the other parts' locks (end watchers, repository names, token uses, the
// pool, the log archiver's queue) are taken alone.
type Coordinator struct {
	cfg Config
	log hclog.Logger
	// logs are read and written here: Logs, or Logs and Blobs.
	logs LogStore
	// archiver moves logs of ended attempts to Blobs (nil: none).
	archiver *logArchiver

	dispatcher *dispatcher
	agents     *agentRegistry
	leases     *leaseTable
	cacheUses  cacheUses
	handed     handedURLs
	listings   artifactListings
	// wake asks the loop (Run) for a dispatch pass.
	wake        chan struct{}
	endWatchers endWatchers
	metrics     *metrics
	// repos are the registered repositories' names: only their builds
	// have secrets to read.
	repos repoNames
	// statuses tells forges how their builds are doing.
	statuses *commitStatuses
	pool     attachedPool
	// changes and buildChanges wake the dashboard's watchers (Changes,
	// BuildChanges).
	changes, buildChanges broadcast
	// uses says when each token's use was last recorded.
	uses        tokenUses
	revocations broadcast
	// lead is this coordinator's time as the leader (nil: it stands by).
	lead atomic.Pointer[leadTerm]
	// entries is how far the leader has taken up the entries to the
	// queue (leadership.go).
	entries queueEntries
}

// New loads the queue and the running attempts from the store.
func New(ctx context.Context, cfg Config) (*Coordinator, error) {
	if cfg.Store == nil || cfg.Logs == nil {
		return nil, errors.New("coordinator: a store and a log store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BuildTimeout == 0 {
		cfg.BuildTimeout = DefaultBuildTimeout
	}
	if cfg.AgentGrace <= 0 {
		cfg.AgentGrace = DefaultAgentGrace
	}
	if cfg.Script == (Capacity{}) {
		cfg.Script = Capacity{MilliCPUs: 1000, Memory: 1 << 30}
	}
	if cfg.Job == (Capacity{}) {
		cfg.Job = Capacity{MilliCPUs: 1000, Memory: 2 << 30}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger, logs: cfg.Logs, agents: newAgentRegistry(cfg.Now), leases: newLeaseTable(), wake: make(chan struct{}, 1)}
	if cfg.Blobs != nil {
		archived := logarchive.New(cfg.Logs, cfg.Blobs)
		c.logs = archived
		c.archiver = newLogArchiver(archived, cfg.Logs, cfg.Store, cfg.Logger.Named("logs"))
	}
	c.dispatcher = newDispatcher(c.agents, c.leases)
	c.metrics = newMetrics(c)
	c.statuses = newCommitStatuses(cfg.Statuses, cfg.Store, cfg.Keys, cfg.PublicURL, cfg.Logger)
	repos, err := cfg.Store.ListRepos(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading repositories: %w", err)
	}
	c.repos.reset(repos, time.Time{})
	c.applyLimits()
	for _, r := range repos {
		if err := c.sealURLCredential(ctx, r); err != nil {
			c.log.Warn("a repository's URL holds a credential in clear", "repo", r.Name, "error", err)
		}
	}
	if !cfg.Elected { // an elected one takes them up when it leads
		queued, err := cfg.Store.Queued(ctx)
		if err != nil {
			return nil, fmt.Errorf("loading the queue: %w", err)
		}
		for i := range queued {
			c.dispatcher.add(&queued[i])
		}
		running, err := cfg.Store.Running(ctx)
		if err != nil {
			return nil, fmt.Errorf("loading running builds: %w", err)
		}
		for _, b := range running {
			c.leases.start(b.ID, lease{attempt: b.Attempt, agent: b.Agent, repo: b.Repo, started: b.Started, storedThrough: -1, forge: c.statuses.refOf(&b)})
			c.agents.load(b.Agent, b.ID, hold{b.Attempt, cfg.Script})
		}
	}
	if !cfg.Elected {
		c.lead.Store(&leadTerm{ended: make(chan struct{})}) // for ever
	} else {
		go c.watchStandby(ctx)
		go c.watchRevocations(ctx, c.tokenHashes(ctx))
	}
	return c, nil
}

// Run dispatches queued builds and expires leases until ctx ends.
func (c *Coordinator) Run(ctx context.Context) error {
	tick := time.NewTicker(c.cfg.Lease / 10)
	defer tick.Stop()
	go c.statuses.run(ctx)
	if c.archiver != nil {
		go c.archiver.run(ctx)
	}
	if c.cfg.Blobs != nil {
		go c.collectEvery(ctx)
	}
	c.poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
			c.dispatch(ctx)
		case <-tick.C:
			c.expireLeases(ctx)
			c.timeOut(ctx)
			c.agents.reorder()
			c.dispatch(ctx)
		}
	}
}

// poke asks the loop to dispatch soon.
func (c *Coordinator) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
