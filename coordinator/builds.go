package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A build's life as admins and forges drive it: triggered, canceled,
// retried, and watched until it ends.

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
	if err == nil && c.Leading() { // else the leader says it, as it takes the build up
		c.statuses.queued(&b)
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
	var conn *agentConn
	if c.Leading() {
		conn = c.dispatcher.placeNow(&b)
	}
	if conn != nil {
		b.State, b.Attempt, b.Agent, b.Started = Running, 1, conn.id, b.Created
		b.LeaseExpires = b.Created.Add(c.cfg.Lease)
	}
	err := create(b)
	if conn != nil && errors.Is(err, ErrNotLeader) {
		// No longer the leader: stored queued, for the one who is.
		c.dispatcher.unplace(&b, conn)
		conn = nil
		b.State, b.Attempt, b.Agent, b.Started, b.LeaseExpires = Queued, 0, "", time.Time{}, time.Time{}
		err = create(b)
	}
	if err != nil {
		if conn != nil {
			c.dispatcher.unplace(&b, conn)
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
	if c.Leading() { // else the leader takes it up from the store
		queued := b // the dispatcher's, from now on
		c.dispatcher.add(&queued)
		c.poke()
	}
	return b, nil
}

// Cancel ends a build: a queued one at once, a running one by telling its
// agent (the build ends when the agent reports it canceled, or when its
// lease runs out).
func (c *Coordinator) Cancel(ctx context.Context, id string) error { return c.cancel(ctx, id, "") }

// cancel is Cancel, for the newer build supersededBy when it is not "":
// the build's message then names it.
func (c *Coordinator) cancel(ctx context.Context, id, supersededBy string) error {
	if !c.Leading() {
		return c.onLeader(ctx, func(ctx context.Context, api fleet.AdminClient) error {
			_, err := api.CancelBuild(ctx, &fleet.BuildRef{Id: id, SupersededBy: supersededBy})
			return err
		})
	}
	because := ""
	if supersededBy != "" {
		because = supersededMessage(supersededBy)
	}
	return c.cancelBecause(ctx, id, because)
}

// cancelBecause cancels a build on the leader. because, when not "", is
// the message the build ends with, whatever its agent reports.
func (c *Coordinator) cancelBecause(ctx context.Context, id, because string) error {
	why := because
	if why == "" {
		why = "canceled before it was dispatched"
	}
	queued, l, ok := c.dispatcher.cancel(id)
	if queued != nil {
		if err := c.cfg.Store.Finish(ctx, id, 0, events.Canceled, why); err != nil {
			c.notifyEnded(id)
			return err
		}
		c.buildEnded(id, c.statuses.refOf(queued), events.Canceled, why)
		return nil
	}
	if !ok {
		b, err := c.cfg.Store.GetBuild(ctx, id)
		if err != nil {
			return err
		}
		if b.State == Queued { // queued by another coordinator, not taken up yet
			if err := c.cfg.Store.Finish(ctx, id, 0, events.Canceled, why); err != nil {
				return err
			}
			c.buildEnded(id, c.statuses.refOf(&b), events.Canceled, why)
			return nil
		}
		return fmt.Errorf("build %s: %w", id, ErrEnded)
	}
	if because != "" {
		c.leases.noteCanceled(id, l.attempt, because)
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
	c.changed()
	if c.Leading() { // else the leader takes it up from the store
		b.queuedAt = c.cfg.Now()
		c.dispatcher.add(&b)
		c.poke()
	}
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
	} else if c.cfg.Elected {
		go c.pollEnd(ctx, id) // another coordinator may end it
	}
	return ch, nil
}

// buildEnded accounts for a build whose end is now stored: the metric, its
// forge's status, and whoever waits on it.
func (c *Coordinator) buildEnded(id string, ref *statusRef, result events.Result, message string) {
	c.metrics.buildEnded(result)
	c.statuses.noteEnd(ref, result, message)
	c.notifyEnded(id)
	c.logsEnded(id)
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

// IsBuildID says whether s is a build's whole id, as newBuildID makes
// them: 24 hex digits.
func IsBuildID(s string) bool {
	if len(s) != 24 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// NewID makes a random id for builds, agents and tokens.
func NewID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
