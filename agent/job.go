package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
)

// jobRun is one job of a build: started by the script, run by the agent,
// or an action the script runs itself (action.go).
type jobRun struct {
	job      pipeline.Job
	done     chan struct{} // closed when result is set
	result   jobResult
	duration time.Duration
	// Under build.mu: started once it holds capacity (an action at once),
	// zero before; ending once someone took on to finish it.
	started time.Time
	action  bool
	ending  bool
	// Services only (service.go): ready is closed once the service
	// accepts connections on every port it exposes, stop once it is asked
	// to stop.
	ready    chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	// launched is closed once the job's container was started, or the job
	// waits for capacity, or has ended (launch): what a script started
	// after it waits for (ahead.go).
	launched   chan struct{}
	launchOnce sync.Once
}

func (jr *jobRun) launch() { jr.launchOnce.Do(func() { close(jr.launched) }) }

type jobResult struct {
	id      string
	status  events.Result
	exit    int
	message string
}

// startJob registers a job and runs it in the background; the job waits
// for its dependencies and then for capacity there. A job that can never
// fit ends at once, saying why.
func (b *build) startJob(j pipeline.Job) error {
	deps, err := b.lookupDeps(j.ID, j.Dependencies)
	if err != nil {
		return err
	}
	if j.Arch != "" {
		if err := b.require([]string{j.Arch}); err != nil {
			return err
		}
	}
	jr, err := b.register(j.ID, j, true, false)
	if err != nil {
		return err
	}
	need := jobNeeds(j)
	never := b.r.cfg.Ledger.CanEverFit(need, b.scriptKeeps())
	if never == nil && j.Pids > b.r.cfg.Pids {
		never = fmt.Errorf("asks for %d processes (pids), and this agent allows at most %d (its --pids)", j.Pids, b.r.cfg.Pids)
	}
	if never != nil {
		b.finish(jr, jobResult{status: events.Error, exit: -1, message: fmt.Sprintf("can never run on this agent: it %v", never)}, 0)
		b.wg.Done()
		return nil
	}
	go func() {
		defer b.wg.Done()
		b.emit(events.Event{Type: events.JobQueued, Job: j.ID, Deps: j.Dependencies, Expose: j.Expose})
		if res, ok := b.awaitDeps(deps); !ok {
			b.finish(jr, res, 0)
			return
		}
		if err := b.r.cfg.Ledger.AcquireOr(b.jobsCtx, need, jr.launch); err != nil {
			b.finish(jr, jobResult{status: events.Canceled, exit: -1, message: "canceled while waiting for capacity"}, 0)
			return
		}
		started := b.markRunning(jr)
		res := b.execJob(jr, servicesOf(deps))
		b.r.cfg.Ledger.Release(need)
		b.finish(jr, res, time.Since(started))
	}()
	return nil
}

// lookupDeps returns the jobs a job depends on: jobs of this build started
// or skipped before it (which also rules out cycles).
func (b *build) lookupDeps(id string, deps []string) ([]*jobRun, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*jobRun
	for _, d := range deps {
		jr, ok := b.jobs[d]
		if !ok {
			return nil, unknownDepError{job: id, dep: d}
		}
		out = append(out, jr)
	}
	return out, nil
}

// unknownDepError: a job depends on one the build does not have (yet).
type unknownDepError struct{ job, dep string }

func (e unknownDepError) Error() string {
	return fmt.Sprintf("job %s depends on %s, which was not started in this build", e.job, e.dep)
}

// awaitDeps waits for a job's dependencies to end, but for services, which
// are awaited once the job's container is made (awaitReady). When one did
// not succeed (or the build is ending) it returns the job's result instead.
func (b *build) awaitDeps(deps []*jobRun) (jobResult, bool) {
	for _, d := range deps {
		if d.job.Service() {
			continue // awaited once this job's container is made (awaitReady)
		}
		select {
		case <-d.done:
		case <-b.jobsCtx.Done():
			return jobResult{status: events.Canceled, exit: -1, message: "canceled while waiting for its dependencies"}, false
		}
		b.mu.Lock()
		res := d.result
		b.mu.Unlock()
		if res.status != events.Success {
			return jobResult{status: events.Skipped, message: events.SkipReason(res.id, res.status)}, false
		}
	}
	return jobResult{}, true
}

// markRunning notes that a job holds its capacity and runs from now.
func (b *build) markRunning(jr *jobRun) time.Time {
	now := time.Now()
	b.mu.Lock()
	jr.started = now
	b.mu.Unlock()
	return now
}

// skipJob records a job the script will not run.
func (b *build) skipJob(id, reason string) error {
	jr, err := b.register(id, pipeline.Job{ID: id}, false, false)
	if err != nil {
		return err
	}
	b.finish(jr, jobResult{status: events.Skipped, message: reason}, 0)
	return nil
}

// register adds a job to the build; run counts it among the jobs Run
// waits for (under the same lock that closes the build, so none slips in
// after the build stopped waiting). An action runs from now on.
func (b *build) register(id string, j pipeline.Job, run, action bool) (*jobRun, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errBuildEnding
	}
	if _, ok := b.jobs[id]; ok {
		return nil, fmt.Errorf("%w: %s", errDuplicateJob, id)
	}
	if run {
		b.wg.Add(1)
	}
	jr := &jobRun{job: j, done: make(chan struct{}), action: action, ready: make(chan struct{}), stop: make(chan struct{}), launched: make(chan struct{})}
	if action {
		jr.started = time.Now()
	}
	b.jobs[id] = jr
	b.order = append(b.order, id)
	return jr, nil
}

func (b *build) finish(jr *jobRun, res jobResult, d time.Duration) {
	res.id = jr.job.ID
	// Told before anyone waiting hears it, so events stay in order.
	e := events.Event{Type: events.JobEnd, Job: res.id, Status: res.status, Exit: events.ExitCode(res.exit), Message: res.message, Duration: d}
	if res.status == events.Skipped {
		e = events.Event{Type: events.JobSkipped, Job: res.id, Status: res.status, Message: res.message}
	}
	b.emit(e)
	jr.launch()
	b.mu.Lock()
	jr.result, jr.duration = res, d
	close(jr.done)
	b.changedLocked()
	b.mu.Unlock()
}

// changedLocked wakes whoever waits on b.changed (an await of jobs or of
// an unblock). Under b.mu.
func (b *build) changedLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// await waits until any (or all) of ids have ended and returns the results
// of those that have. The script is paused meanwhile, and resumed first.
func (b *build) await(ctx context.Context, ids []string, any bool) ([]jobResult, error) {
	b.mu.Lock()
	for _, id := range ids {
		if _, ok := b.jobs[id]; !ok {
			b.mu.Unlock()
			return nil, fmt.Errorf("no job %q was started in this build", id)
		}
	}
	b.mu.Unlock()
	collect := func() (<-chan struct{}, []jobResult, bool) {
		b.mu.Lock()
		defer b.mu.Unlock()
		var done []jobResult
		for _, id := range ids {
			select {
			case <-b.jobs[id].done:
				done = append(done, b.jobs[id].result)
			default:
			}
		}
		complete := len(done) == len(ids) || any && len(done) > 0
		return b.changed, done, complete
	}
	changed, done, complete := collect()
	if complete {
		b.pauser.answer(ctx) // another await of the script's may have frozen it
		return done, nil
	}
	b.pauser.awaitBegin()
	for !complete {
		select {
		case <-changed:
		case <-ctx.Done():
			b.pauser.awaitOver(ctx)
			return nil, ctx.Err()
		}
		changed, done, complete = collect()
	}
	b.pauser.awaitEnd(ctx)
	return done, nil
}

var errBuildEnding = errors.New("the build is ending: no more jobs can start")

// scriptKeeps is what the build's script holds even while it waits: its
// memory, and its CPU too when it is not paused.
func (b *build) scriptKeeps() Resources {
	keeps := Resources{Memory: b.script.Memory}
	if !b.r.cfg.Pause {
		keeps.MilliCPUs = b.script.MilliCPUs
	}
	return keeps
}

func jobNeeds(j pipeline.Job) Resources {
	return Resources{MilliCPUs: j.MilliCPUs(), Memory: j.Memory}
}
