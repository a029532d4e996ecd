package coordinator

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/coordinator/logarchive"
)

// archiveSweep is how often the archiver looks again at every build with
// logs on disk: for moves that failed (the blob store was down), and for
// anything an end did not ask for.
const archiveSweep = 10 * time.Minute

// Logs is the coordinator's log store, as the dashboard reads it: the
// logs of running attempts on disk, of ended ones wherever they are.
func (c *Coordinator) Logs() LogStore { return c.logs }

// logsEnded asks for the build's logs of attempts that ended to move off
// the coordinator's disk (when it has a blob store), and withdraws the
// URLs its attempts were handed: called once a build ends or gives up an
// attempt.
func (c *Coordinator) logsEnded(id string) {
	c.revokeURLs(id)
	if c.archiver != nil {
		c.archiver.add(id)
	}
}

// logArchiver moves the logs of attempts that ended from the
// coordinator's disk to the blob store, one build at a time, so that the
// disk holds only what runs. At start it looks at every build with logs on
// disk: a move a crash cut short is finished, one not begun is made.
type logArchiver struct {
	logs  *logarchive.Store
	disk  logarchive.Live
	store Store
	log   hclog.Logger

	mu      sync.Mutex
	pending []string // builds to look at, in order
	queued  map[string]bool
	wake    chan struct{}
}

func newLogArchiver(logs *logarchive.Store, disk logarchive.Live, store Store, log hclog.Logger) *logArchiver {
	return &logArchiver{logs: logs, disk: disk, store: store, log: log, queued: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// add queues a build to look at; it never blocks.
func (a *logArchiver) add(id string) {
	a.mu.Lock()
	if !a.queued[id] {
		a.queued[id] = true
		a.pending = append(a.pending, id)
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// take takes up to n of the builds to look at, oldest first.
func (a *logArchiver) take(n int) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := slices.Clone(a.pending[:min(n, len(a.pending))])
	a.pending = a.pending[len(ids):]
	for _, id := range ids {
		delete(a.queued, id)
	}
	return ids
}

// archiveLook is how many ended builds one look for logs covers: most
// builds that end have none left on disk to move (nothing written, or an
// earlier end moved them), and a look each would cost a query each.
const archiveLook = 500

// run moves logs until ctx ends; a move cut short by that is finished at
// the next start.
func (a *logArchiver) run(ctx context.Context) {
	a.sweep()
	tick := time.NewTicker(archiveSweep)
	defer tick.Stop()
	for {
		for ids := a.take(archiveLook); len(ids) > 0 && ctx.Err() == nil; ids = a.take(archiveLook) {
			withLogs, err := a.disk.WithLogs(ids)
			if err != nil {
				a.log.Warn("could not look for logs to move; trying again at the next sweep", "error", err)
			}
			for _, id := range withLogs {
				a.archive(ctx, id)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		case <-tick.C:
			a.sweep()
		}
	}
}

// sweep queues every build with logs on disk.
func (a *logArchiver) sweep() {
	builds, err := a.disk.Builds()
	if err != nil {
		a.log.Error("could not list the builds with logs on disk", "error", err)
		return
	}
	for _, id := range builds {
		a.add(id)
	}
}

// archive moves the build's attempts on disk that have ended: those
// before its current one, and that one once the build is not running.
func (a *logArchiver) archive(ctx context.Context, id string) {
	attempts, err := a.disk.Attempts(id)
	if err != nil || len(attempts) == 0 {
		return
	}
	b, err := a.store.GetBuild(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return // not a build of this store's: left alone
	}
	if err != nil {
		a.log.Warn("could not read a build to move its logs; trying again later", "build", id, "error", err)
		return
	}
	for _, n := range attempts {
		// An attempt after the one read started since: it runs.
		if n > b.Attempt || n == b.Attempt && b.State == Running {
			continue
		}
		if err := a.logs.Archive(ctx, id, n); err != nil {
			if ctx.Err() == nil {
				a.log.Warn("could not move logs to the blob store; trying again later", "build", id, "attempt", n, "error", err)
			}
			return
		}
		a.log.Debug("logs moved to the blob store", "build", id, "attempt", n)
	}
}
