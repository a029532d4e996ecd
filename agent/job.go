package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/logorder"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/sidecar"
)

// jobFilesPath is where a job's wrapper, event log and log files are
// mounted in its container.
const jobFilesPath = "/opt/monkeyci/job"

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
}

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
		if err := b.r.cfg.Ledger.Acquire(b.jobsCtx, need); err != nil {
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
	jr := &jobRun{job: j, done: make(chan struct{}), action: action, ready: make(chan struct{}), stop: make(chan struct{})}
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

// execJob runs one job's container from create to remove. Its messages
// leave out the job's id: whoever shows them shows it. services are the
// services it depends on: it runs once they are ready (service.go).
func (b *build) execJob(jr *jobRun, services []*jobRun) jobResult {
	j := jr.job
	ctx, rt := b.jobsCtx, b.r.cfg.Runtime
	fail := func(status events.Result, format string, args ...any) jobResult {
		return jobResult{status: status, exit: -1, message: fmt.Sprintf(format, args...)}
	}
	b.emit(events.Event{Type: events.JobInitializing, Job: j.ID})
	b.pauser.jobStarting()
	started := sync.OnceFunc(b.pauser.jobStarted)
	defer started()
	if err := rt.EnsureImage(ctx, j.Image); err != nil {
		return fail(events.Error, "%v", err)
	}
	spec, filesDir, err := b.jobContainer(j)
	if err != nil {
		return fail(events.Error, "%v", err)
	}
	var gate *os.File
	if filesDir != "" && len(services) > 0 {
		if gate, err = makeGate(filesDir); err != nil {
			return fail(events.Error, "%v", err)
		}
		defer gate.Close()
	}
	id, err := b.create(spec)
	if err != nil {
		return fail(events.Error, "creating its container: %v", err)
	}
	defer func() {
		// On cancel this kills the container at once.
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		_ = rt.Remove(ctx, id)
	}()
	caches, err := b.restore(id, j, spec.WorkDir)
	if err != nil {
		return fail(events.Error, "%v", err)
	}
	started() // made and filled: the script may freeze before it starts

	sink := &jobSink{b: b, job: j.ID, lines: j.Script}
	run := containerRun{id: id, jr: jr, filesDir: filesDir, sink: sink, caches: caches, services: services, gate: gate}
	exit, err := b.runContainer(ctx, run)
	b.emit(events.Event{Type: events.JobExecuted, Job: j.ID})
	var unserved serviceError
	switch {
	case run.stopped():
		// A service runs until nothing needs it: being stopped is its end.
		return jobResult{status: events.Success, exit: exit.Code, message: "stopped: no job needs it any more"}
	case ctx.Err() != nil:
		return fail(events.Canceled, "canceled")
	case errors.Is(err, errTimedOut):
		return fail(events.Error, "timed out after %s", j.Timeout)
	case errors.As(err, &unserved):
		return fail(events.Failure, "%v", err)
	case err != nil:
		return fail(events.Error, "%v", err)
	}
	res := jobResult{status: events.Success, exit: exit.Code}
	if exit.Code != 0 {
		res.status, res.message = events.Failure, sink.failure(exit)
	}
	if msg := b.save(id, j, spec.WorkDir, res.status == events.Success); msg != "" && res.status == events.Success {
		res.status, res.message = events.Failure, msg
	}
	if sink.lost != nil {
		lost := "its output could not be read: " + sink.lost.Error()
		if res.message != "" {
			lost = res.message + "; " + lost
		}
		res.message = lost
	}
	return res
}

var errTimedOut = errors.New("timed out")

// containerRun is one job container to run: what runContainer needs.
type containerRun struct {
	id       string
	jr       *jobRun
	filesDir string // the wrapper's files; "" for a job without script lines
	sink     *jobSink
	caches   []events.Cache
	// services the job depends on, and the gate its wrapper waits at until
	// they are ready (nil: the container starts once they are).
	services []*jobRun
	gate     *os.File
}

// stopped says the job, a service, was asked to stop before its
// container was seen to exit.
func (r *containerRun) stopped() bool {
	select {
	case <-r.jr.stop:
		return r.jr.job.Service()
	default:
		return false
	}
}

// runContainer starts a job's created container, follows its output (the
// wrapper's files, or the engine's log for a job without script lines)
// and waits for it to exit, time out, or (a service) be stopped.
func (b *build) runContainer(ctx context.Context, r containerRun) (Exit, error) {
	rt, j, id := b.r.cfg.Runtime, r.jr.job, r.id
	exited := make(chan struct{})
	followed := make(chan error, 1)
	follow := func() error {
		if r.filesDir != "" {
			return sidecar.Tail(ctx, r.filesDir, r.sink, exited)
		}
		return rt.Logs(ctx, id, outputWriter{b.rep, j.ID, "out"}, outputWriter{b.rep, j.ID, "err"})
	}
	done := func() {
		close(exited)
		if err := <-followed; err != nil && ctx.Err() == nil {
			r.sink.lost = err
		}
	}
	if r.filesDir != "" { // from before the start: a job may end at once
		go func() { followed <- follow() }()
	}
	if r.gate == nil && len(r.services) > 0 {
		if err := b.awaitReady(ctx, r.services); err != nil {
			if r.filesDir == "" {
				followed <- nil
			}
			done()
			return Exit{}, err
		}
	}
	if j.Service() {
		// Probed from before the start call: the call returns some time
		// after the process runs, and the ports may accept before.
		pctx, over := context.WithCancel(ctx)
		defer over()
		go b.probe(pctx, id, r.jr)
	}
	// Said before the start call returns: output may arrive before it does.
	b.emit(events.Event{Type: events.JobStart, Job: j.ID, Caches: r.caches})
	if err := rt.Start(ctx, id); err != nil {
		if r.filesDir == "" {
			followed <- nil
		}
		done()
		return Exit{}, fmt.Errorf("starting its container: %w", err)
	}
	if r.filesDir == "" {
		go func() { followed <- follow() }()
	}
	wctx, cancel := context.WithTimeout(ctx, j.Timeout)
	defer cancel()
	timedOut := func() bool { return errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil }
	if r.gate != nil {
		err := b.awaitReady(wctx, r.services)
		if err == nil {
			_, err = r.gate.WriteString("go\n")
		}
		if err != nil {
			_ = rt.Stop(context.WithoutCancel(ctx), id, 0)
			done()
			if timedOut() {
				err = errTimedOut
			}
			return Exit{}, err
		}
	}
	if j.Service() {
		sctx, over := context.WithCancel(wctx)
		defer over()
		go func() {
			select {
			case <-r.jr.stop:
				_ = rt.Stop(context.WithoutCancel(ctx), id, serviceStopGrace)
			case <-sctx.Done():
			}
		}()
	}
	exit, err := rt.Wait(wctx, id)
	if timedOut() && !r.stopped() {
		_ = rt.Stop(context.WithoutCancel(ctx), id, 1)
		err = errTimedOut
	} else if err != nil {
		err = fmt.Errorf("waiting for its container: %w", err)
	}
	done()
	return exit, err
}

// jobContainer is the container of a job, and the host directory of its
// wrapper files ("" for a job without script lines).
func (b *build) jobContainer(j pipeline.Job) (ContainerSpec, string, error) {
	workDir := j.WorkDir
	if workDir == "" {
		workDir = workspacePath
	} else if !path.IsAbs(workDir) {
		workDir = path.Join(workspacePath, workDir)
	}
	env := []string{"MONKEYCI_BUILD_ID=" + b.spec.ID, "MONKEYCI_JOB_ID=" + j.ID}
	// The repository's secrets, unless the job's own env names the key.
	vars := maps.Clone(j.Env)
	if vars == nil {
		vars = map[string]string{}
	}
	for k, v := range b.spec.Secrets {
		if _, own := vars[k]; !own {
			vars[k] = v
		}
	}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	spec := ContainerSpec{
		Name:       "monkeyci-" + b.spec.ID + "-" + j.ID,
		Image:      j.Image,
		Entrypoint: j.Entrypoint,
		Cmd:        j.Cmd,
		WorkDir:    workDir,
		Labels:     b.jobLabels(j),
		Mounts:     []Mount{{Volume: b.volume, Target: workspacePath}},
		NanoCPUs:   j.MilliCPUs() * 1e6,
		Memory:     j.Memory,
		Network:    b.network(),
		Aliases:    []string{j.ID},
	}
	pids := b.r.cfg.Pids
	if j.Pids > 0 {
		pids = j.Pids // at most the agent's: startJob refused more
	}
	confine(&spec, pids)
	filesDir := ""
	if len(j.Script) > 0 {
		filesDir = filepath.Join(b.dir, "jobs", j.ID)
		if err := sidecar.Write(filesDir, j.Script); err != nil {
			return spec, "", fmt.Errorf("writing its wrapper: %w", err)
		}
		cmd, wenv := sidecar.Command(jobFilesPath, len(j.Script), j.Shell)
		spec.Entrypoint, spec.Cmd = []string{}, cmd
		env = append(env, wenv...)
		spec.Mounts = append(spec.Mounts, Mount{Source: filesDir, Target: jobFilesPath})
	}
	spec.Env = env
	return spec, filesDir, nil
}

// jobLabels are the job's own labels under ours; ours cannot be overridden.
func (b *build) jobLabels(j pipeline.Job) map[string]string {
	labels := map[string]string{}
	for k, v := range j.Labels {
		if !strings.HasPrefix(k, labelPrefix) {
			labels[k] = v
		}
	}
	maps.Copy(labels, b.labelsFor("job", j.ID))
	return labels
}

// restore puts the job's artifacts and caches in place before it starts,
// each only under the path the job declares for it, and says where each
// cache came from. A cache missing from the build's scope is read from
// its fallback scope, if it has one.
func (b *build) restore(id string, j pipeline.Job, workDir string) ([]events.Cache, error) {
	rt := b.r.cfg.Runtime
	for _, a := range j.RestoreArtifacts {
		err := restoreArchive(b.jobsCtx, rt, id, b.artifactFile(a.ID), containerPath(workDir, a.Path))
		if errors.Is(err, errNoArchive) {
			return nil, fmt.Errorf("artifact %q was not saved by any job that ran before", a.ID)
		}
		if err != nil {
			return nil, fmt.Errorf("restoring artifact %q: %w", a.ID, err)
		}
	}
	scope := b.cacheScope()
	var caches []events.Cache
	for _, c := range j.Caches {
		got := events.Cache{ID: c.ID, Scope: scope.Scope}
		for _, from := range []string{scope.Scope, scope.Fallback} {
			if from == "" {
				continue
			}
			err := restoreArchive(b.jobsCtx, rt, id, b.cacheFile(from, c.ID), containerPath(workDir, c.Path))
			if errors.Is(err, errNoArchive) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("restoring cache %q from %s: %w", c.ID, from, err)
			}
			got.From = from
			break
		}
		caches = append(caches, got)
	}
	return caches, nil
}

// save keeps the job's artifacts and, when it succeeded, its caches in the
// build's own scope (never its fallback). It returns what went wrong, in
// words, or "".
func (b *build) save(id string, j pipeline.Job, workDir string, succeeded bool) string {
	ctx, rt := context.WithoutCancel(b.jobsCtx), b.r.cfg.Runtime
	var problems []string
	for _, a := range j.SaveArtifacts {
		err := saveArchive(ctx, rt, id, containerPath(workDir, a.Path), b.artifactFile(a.ID))
		switch {
		case errors.Is(err, ErrPathNotFound):
			problems = append(problems, fmt.Sprintf("artifact %q: %s does not exist after the job", a.ID, containerPath(workDir, a.Path)))
		case err != nil:
			problems = append(problems, fmt.Sprintf("saving artifact %q from %s: %v", a.ID, a.Path, err))
		}
	}
	if succeeded {
		scope := b.cacheScope().Scope
		for _, c := range j.Caches {
			if err := saveArchive(ctx, rt, id, containerPath(workDir, c.Path), b.cacheFile(scope, c.ID)); err != nil {
				b.r.cfg.Logger.Warn("could not save cache", "job", j.ID, "cache", c.ID, "scope", scope, "error", err)
			}
		}
	}
	return strings.Join(problems, "; ")
}

// jobSink forwards a job container's wrapper events and output, and keeps
// how its script ended.
type jobSink struct {
	b     *build
	job   string
	lines []string // the job's script, to name its commands
	// lost is why the job's output could not be followed, if it could not.
	lost error

	mu  sync.Mutex
	end *events.Event
}

func (s *jobSink) Event(e events.Event) {
	e.Job = s.job
	if e.Type == events.CommandStart {
		if i, err := strconv.Atoi(e.Command); err == nil && i >= 0 && i < len(s.lines) {
			e.Line = s.lines[i]
		}
	}
	if e.Type == events.ContainerScriptEnd {
		s.mu.Lock()
		s.end = &e
		s.mu.Unlock()
	}
	s.b.emit(e)
}

func (s *jobSink) Output(command, stream string, data []byte) {
	s.b.rep.Output(s.job, stream, data)
}

// failure says in words why a job's container exited non-zero.
func (s *jobSink) failure(exit Exit) string {
	if exit.OOMKilled {
		return "killed: out of memory"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.end != nil && s.end.Step != "" {
		code := exit.Code
		if s.end.Exit != nil {
			code = *s.end.Exit
		}
		// Counted from 1 and shown with its text, as logs show it.
		msg := fmt.Sprintf("command %s failed with exit code %d", logorder.Number(s.end.Step), code)
		if i, err := strconv.Atoi(s.end.Step); err == nil && i >= 0 && i < len(s.lines) {
			msg += ": " + logorder.FirstLine(s.lines[i])
		}
		return msg
	}
	return fmt.Sprintf("exited with code %d", exit.Code)
}
