package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/forge/status"
)

// Defaults of the fleet protocol (docs/architecture.md, The fleet protocol).
const (
	DefaultLease       = 30 * time.Second
	DefaultMaxAttempts = 3
)

// LogStore keeps build logs by byte offset (coordinator/logstore).
type LogStore interface {
	// Write stores data at offset and returns the stream's stored size.
	Write(key LogKey, offset int64, data []byte) (int64, error)
	// Sizes lists an attempt's streams with their stored sizes.
	Sizes(build string, attempt int) ([]logstore.Stream, error)
	// ReadAt reads stored bytes of a stream at an offset, like io.ReaderAt.
	ReadAt(key LogKey, offset int64, p []byte) (int, error)
	// Follow copies a stream to w from an offset on, waiting for writes
	// until ended is closed and all is copied, or ctx ends.
	Follow(ctx context.Context, key LogKey, from int64, w io.Writer, ended <-chan struct{}) error
}

// LogKey names one output stream of one attempt of a build.
type LogKey = logstore.Key

// Config is what a Coordinator needs; zero values take the defaults.
type Config struct {
	Store  Store
	Logs   LogStore
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
// pool) are taken alone.
type Coordinator struct {
	cfg Config
	log hclog.Logger

	dispatcher *dispatcher
	agents     *agentRegistry
	leases     *leaseTable
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
	c := &Coordinator{cfg: cfg, log: cfg.Logger, agents: newAgentRegistry(cfg.Now), leases: newLeaseTable(), wake: make(chan struct{}, 1)}
	c.dispatcher = newDispatcher(c.agents, c.leases)
	c.metrics = newMetrics(c)
	c.statuses = newCommitStatuses(cfg.Statuses, cfg.Store, cfg.Keys, cfg.PublicURL, cfg.Logger)
	repos, err := cfg.Store.ListRepos(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading repositories: %w", err)
	}
	for _, r := range repos {
		c.repos.add(r.Name)
		if err := c.sealURLCredential(ctx, r); err != nil {
			c.log.Warn("a repository's URL holds a credential in clear", "repo", r.Name, "error", err)
		}
	}
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
		c.leases.start(b.ID, lease{attempt: b.Attempt, agent: b.Agent, storedThrough: -1, forge: c.statuses.refOf(&b)})
		c.agents.load(b.Agent, b.ID, hold{b.Attempt, cfg.Script})
	}
	return c, nil
}

// Run dispatches queued builds and expires leases until ctx ends.
func (c *Coordinator) Run(ctx context.Context) error {
	tick := time.NewTicker(c.cfg.Lease / 10)
	defer tick.Stop()
	go c.statuses.run(ctx)
	c.poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
			c.dispatch(ctx)
		case <-tick.C:
			c.expireLeases(ctx)
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

// Trigger queues a new build. When no build waits and an agent can take
// it, it is not queued but stored running as attempt 1 on that agent, in
// the write that creates it, and sent there: what the dispatcher would do
// next, for one write less.
func (c *Coordinator) Trigger(ctx context.Context, b Build) (Build, error) {
	defaultBranch, err := c.resolveRepo(ctx, &b)
	if err != nil {
		return Build{}, fmt.Errorf("reading repositories: %w", err)
	}
	// A local repository's build says, and builds, the commit its HEAD
	// (or the branch asked) is at now, as a forge's push says its own.
	if b.Source.Commit == "" && b.Source.Tag == "" {
		if branch, commit, ok := source.LocalHead(b.Source.URL, b.Source.Branch); ok {
			b.Source.Branch, b.Source.Commit = branch, commit
		}
	}
	// Once the branch is known: a local HEAD's may be a feature branch.
	b.Cache = CacheScopeOf(b.Source, b.PullRequest, defaultBranch)
	return c.trigger(ctx, b, func(b Build) error { return c.cfg.Store.CreateBuild(ctx, b) })
}

// RedeliveryWindow is how long after a forge event's build the same event
// delivered again under another delivery id makes no second build.
const RedeliveryWindow = time.Hour

// TriggerDelivered queues a build made by a forge's webhook delivery,
// once per delivery and once per event within RedeliveryWindow: a delivery
// seen before returns the build made first, with ErrDuplicate.
func (c *Coordinator) TriggerDelivered(ctx context.Context, b Build, d Delivery) (Build, error) {
	var first string
	b, err := c.trigger(ctx, b, func(b Build) error {
		var err error
		d.Since = b.Created.Add(-RedeliveryWindow)
		first, err = c.cfg.Store.CreateDeliveredBuild(ctx, b, d)
		return err
	})
	if errors.Is(err, ErrDuplicate) {
		return Build{ID: first}, err
	}
	if err == nil {
		c.statuses.note(c.statuses.refOf(&b), status.Pending, "queued")
	}
	return b, err
}

// trigger queues b, stored by create: sent at once to an agent with room
// when none waits before it.
func (c *Coordinator) trigger(ctx context.Context, b Build, create func(Build) error) (Build, error) {
	if b.Source.URL == "" && b.Repo != "" {
		return Build{}, fmt.Errorf("no repository is registered as %q, and no source URL was given", b.Repo)
	}
	if b.Source.URL == "" {
		return Build{}, errors.New("a build needs a source URL or path")
	}
	if _, credential := source.SplitCredentials(b.Source.URL); credential != "" {
		// A build's URL is shown everywhere; a credential is kept only
		// sealed, with a registered repository.
		return Build{}, fmt.Errorf("the URL %s holds a credential, which a build does not keep: register the repository (monkeyci repos add NAME --url URL), where it is kept sealed, and build it by its name",
			source.Redact(b.Source.URL))
	}
	b.State, b.Attempt, b.Created = Queued, 0, c.cfg.Now()
	b.ID = newBuildID(b.Created)
	if b.Repo == "" {
		b.Repo = b.Source.URL
	}
	conn := c.dispatcher.placeNow(&b)
	if conn != nil {
		b.State, b.Attempt, b.Agent, b.Started = Running, 1, conn.id, b.Created
		b.LeaseExpires = b.Created.Add(c.cfg.Lease)
	}
	if err := create(b); err != nil {
		if conn != nil {
			c.agents.unplace(conn)
		}
		if errors.Is(err, ErrDuplicate) {
			return Build{}, err
		}
		return Build{}, fmt.Errorf("storing the build: %w", err)
	}
	c.changed()
	if conn != nil {
		c.started(&b, conn)
		return b, nil
	}
	queued := b // the dispatcher's, from now on
	c.dispatcher.add(&queued)
	c.poke()
	return b, nil
}

// Cancel ends a build: a queued one at once, a running one by telling its
// agent (the build ends when the agent reports it canceled, or when its
// lease runs out).
func (c *Coordinator) Cancel(ctx context.Context, id string) error {
	queued, l, ok := c.dispatcher.cancel(id)
	if queued != nil {
		const why = "canceled before it was dispatched"
		if err := c.cfg.Store.Finish(ctx, id, 0, events.Canceled, why); err != nil {
			c.notifyEnded(id)
			return err
		}
		c.buildEnded(id, c.statuses.refOf(queued), events.Canceled, why)
		return nil
	}
	if !ok {
		if _, err := c.cfg.Store.GetBuild(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("build %s: %w", id, ErrEnded)
	}
	if conn := c.agents.connected(l.agent); conn != nil {
		conn.cancel(id, l.attempt)
	}
	return nil
}

// Retry queues an ended build again.
func (c *Coordinator) Retry(ctx context.Context, id string) error {
	if err := c.cfg.Store.Retry(ctx, id, ReasonRetried); err != nil {
		return err
	}
	b, err := c.cfg.Store.GetBuild(ctx, id)
	if err != nil {
		return err
	}
	b.queuedAt = c.cfg.Now()
	c.dispatcher.add(&b)
	c.changed()
	c.poke()
	return nil
}

// ErrEnded refuses a change that needs a build not to have ended.
var ErrEnded = errors.New("the build has already ended")

// watchEnd returns a channel closed when the build ends (at once if it
// has).
func (c *Coordinator) watchEnd(ctx context.Context, id string) (<-chan struct{}, error) {
	ch := c.endWatchers.watch(id)
	b, err := c.cfg.Store.GetBuild(ctx, id)
	if err != nil {
		return nil, err
	}
	if b.State == Ended {
		c.notifyEnded(id)
	}
	return ch, nil
}

// buildEnded accounts for a build whose end is now stored: the metric, its
// forge's status, and whoever waits on it.
func (c *Coordinator) buildEnded(id string, ref *statusRef, result events.Result, message string) {
	c.metrics.buildEnded(result)
	c.statuses.noteEnd(ref, result, message)
	c.notifyEnded(id)
}

func (c *Coordinator) notifyEnded(id string) {
	c.endWatchers.ended(id)
	c.changed()
}

// newBuildID makes a build's id: its creation time (unix milliseconds, 6
// bytes) then 6 random bytes, in hex. Ids made later sort after: the
// store's indexes by build id (builds, events, event marks) grow at their
// end, so a commit writes a few pages rather than one per build in it.
func newBuildID(created time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(created.UnixMilli())<<16)
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}

// NewID makes a random id for builds, agents and tokens.
func NewID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
