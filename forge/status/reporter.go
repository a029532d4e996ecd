package status

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"
)

const (
	defaultQueue   = 1024
	defaultWorkers = 4 // so one slow forge does not hold up the others
)

// Reporter sends statuses in the background, never blocking its caller.
// Reports of one target and commit are sent one at a time, in the order
// given; others are sent concurrently.
type Reporter struct {
	client *Client
	log    hclog.Logger
	max    int // queue bound

	// ctx ends the Sends in flight when Close gives up waiting.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when every worker has returned

	mu     sync.Mutex
	cond   *sync.Cond // signalled when the queue, busy or closed change
	queue  []job      // pending, oldest first
	busy   map[key]bool
	closed bool
}

// key is what reports must keep their order within.
type key struct {
	kind, api, repo, commit string
}

type job struct {
	key    key
	target Target
	status Status
}

// NewReporter starts a Reporter sending with c (nil: a zero Client).
func NewReporter(c *Client, logger hclog.Logger) *Reporter {
	return newReporter(c, logger, defaultQueue, defaultWorkers)
}

func newReporter(c *Client, logger hclog.Logger, queue, workers int) *Reporter {
	if c == nil {
		c = &Client{}
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reporter{
		client: c,
		log:    logger,
		max:    queue,
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		busy:   map[key]bool{},
	}
	r.cond = sync.NewCond(&r.mu)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(r.work)
	}
	go func() {
		wg.Wait()
		close(r.done)
	}()
	return r
}

// Report queues a status and returns at once. When the queue is full the
// oldest pending report is dropped: a stuck forge must not hold memory or
// the caller, and newer states matter more than older ones.
func (r *Reporter) Report(t Target, s Status) {
	j := job{key: key{string(t.Kind), t.APIURL, t.Repo, s.Commit}, target: t, status: s}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		r.log.Warn("status reporter closed: report dropped", "forge", t.Kind, "repo", t.Repo,
			"commit", s.Commit, "state", s.State)
		return
	}
	var dropped *job
	if len(r.queue) >= r.max {
		old := r.queue[0]
		dropped = &old
		r.queue = slices.Delete(r.queue, 0, 1)
	}
	r.queue = append(r.queue, j)
	r.cond.Signal()
	r.mu.Unlock()

	if dropped != nil {
		r.log.Warn("status queue full: oldest report dropped", "forge", dropped.target.Kind,
			"repo", dropped.target.Repo, "commit", dropped.status.Commit, "state", dropped.status.State)
	}
}

// Close stops accepting reports and waits, until ctx ends, for the queue
// to drain. If ctx ends first, reports in flight are abandoned and those
// still queued are dropped.
func (r *Reporter) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.cond.Broadcast()
	r.mu.Unlock()

	select {
	case <-r.done:
		r.cancel()
		return nil
	case <-ctx.Done():
	}
	r.mu.Lock()
	// Count before cancelling: a Send ended by the cancel must not take its
	// report off the count before it is made.
	left := len(r.queue) + len(r.busy)
	r.cancel()
	r.cond.Broadcast() // wake workers to see r.ctx ended
	r.mu.Unlock()
	<-r.done // prompt: Sends end with r.ctx
	return fmt.Errorf("status: close reporter: %d report(s) abandoned: %w", left, ctx.Err())
}

func (r *Reporter) work() {
	for {
		j, ok := r.next()
		if !ok {
			return
		}
		if err := r.client.Send(r.ctx, j.target, j.status); err != nil {
			r.log.Warn("status report failed", "forge", j.target.Kind, "repo", j.target.Repo,
				"commit", j.status.Commit, "state", j.status.State, "error", err)
		}
		r.mu.Lock()
		delete(r.busy, j.key)
		r.cond.Broadcast() // the key's next report may go now; or we are drained
		r.mu.Unlock()
	}
}

// next takes the oldest queued report whose target and commit has none in
// flight, waiting for one; false when the Reporter is done.
func (r *Reporter) next() (job, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.ctx.Err() != nil {
			return job{}, false
		}
		for i, j := range r.queue {
			if !r.busy[j.key] {
				r.queue = slices.Delete(r.queue, i, i+1)
				r.busy[j.key] = true
				return j, true
			}
		}
		if r.closed && len(r.queue) == 0 {
			return job{}, false
		}
		r.cond.Wait()
	}
}
