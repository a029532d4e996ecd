package agent

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/monkeyci/monkeyci/buildscript"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// Paths inside the script container.
const (
	scriptAPIDir = "/run/monkeyci"
	// sourcePath is where a script container finds the build's source,
	// read-only, to copy into the workspace (CopyWorkspace).
	sourcePath    = "/opt/monkeyci/source"
	scriptSocket  = scriptAPIDir + "/job.sock"
	workspacePath = "/workspace"
)

// cleanupTimeout bounds the removal of a build's containers and volume,
// which runs on its own context so that a cancel never leaks them.
const cleanupTimeout = time.Minute

// build is one build being run.
type build struct {
	r      *Runner
	spec   BuildSpec
	rep    Reporter
	ctx    context.Context // ends when the build is canceled or over
	cancel context.CancelCauseFunc
	// jobsCtx ends with ctx, or when the script ends: no job outlives it.
	jobsCtx  context.Context
	stopJobs context.CancelFunc
	dir      string // host directory: job files, artifacts
	// apiDir holds the job API's socket: under the temp dir (Runner.apiRoot),
	// since a socket's path may not be longer than 107 bytes and the state
	// dir's may be.
	apiDir  string
	volume  string // the workspace
	labels  map[string]string
	pauser  *pauser
	stopAPI func()

	// stored is what the fleet's store holds of the caches the build
	// restored, as it said: their files' digests (under mu).
	stored map[string]string

	mu      sync.Mutex
	jobs    map[string]*jobRun
	order   []string
	changed chan struct{} // closed and replaced whenever a job ends or is unblocked
	closed  bool          // no more jobs: the script has ended
	made    []string      // containers made, for cleanup
	// sourced is closed once the source is fetched and the script
	// container settled, or could not be (sourceErr, set before).
	sourced   chan struct{}
	sourceErr error
	// script is what the build's script reserves (Config.Script, or its
	// .monkeyci/script.yaml); set before sourced is closed.
	script Resources
	// params are what GetParams answers (facts.go); set before sourced is
	// closed, once the fetch has filled the facts in.
	params map[string]string
	// objects are the source's borrowed object stores, mounted in jobs
	// (gitobjects.go); set before sourced is closed.
	objects []Mount
	// kind is how the source defines its build (0: no source); set before
	// sourced is closed.
	kind buildscript.Kind
	// ahead are the jobs started ahead of the script (ahead.go), as it is
	// to ask for them, until it does.
	ahead map[string]*jobapi.JobSpec
	wg    sync.WaitGroup
	// unblocked are the jobs a person unblocked, blocked those the script
	// said it waits for (unblock.go); unblockMu serialises unblocks.
	unblocked map[string]bool
	blocked   map[string]bool
	unblockMu sync.Mutex
}

// Run runs one build to its end and returns how it went. A build that fails
// is an Outcome with Result failure and a nil error; an error means the
// runner itself could not do its work. Canceling ctx cancels the build; its
// containers, volume and files are removed whatever happens.
func (r *Runner) Run(ctx context.Context, spec BuildSpec, rep Reporter) (Outcome, error) {
	started := time.Now()
	if spec.ID == "" {
		spec.ID = newID()
	}
	if !pipeline.ValidID(spec.ID) {
		// The id names directories, containers and volumes.
		return Outcome{Result: events.Error}, fmt.Errorf("invalid build id %q: use letters, digits, '.', '_' and '-'", spec.ID)
	}
	b := &build{
		r:         r,
		spec:      spec,
		rep:       rep,
		dir:       filepath.Join(r.cfg.StateDir, "builds", spec.ID),
		volume:    "monkeyci-" + spec.ID + "-workspace",
		labels:    map[string]string{LabelBuild: spec.ID, LabelAgent: r.cfg.AgentID},
		jobs:      map[string]*jobRun{},
		unblocked: map[string]bool{},
		blocked:   map[string]bool{},
		changed:   make(chan struct{}),
		sourced:   make(chan struct{}),
	}
	if err := r.track(b); err != nil {
		return Outcome{Result: events.Error}, err
	}
	defer r.untrack(b)
	b.ctx, b.cancel = context.WithCancelCause(ctx)
	defer b.cancel(nil)
	b.jobsCtx, b.stopJobs = context.WithCancel(b.ctx)
	b.emit(events.Event{Type: events.BuildStart})

	scriptExit, err := b.run()
	b.endJobs()
	if b.removeContainers() && b.spec.Release != nil {
		b.spec.Release()
	}
	out := b.outcome(scriptExit)
	out.Duration = time.Since(started)
	if cause := context.Cause(b.ctx); err != nil && cause != nil {
		// Canceled from outside, or failed from inside (the cause says).
		err = nil
		out.Result = events.Canceled
		if !errors.Is(cause, context.Canceled) {
			err, out.Result = cause, events.Error
		}
	} else if err != nil {
		out.Result = events.Error
	}
	end := events.Event{Type: events.BuildEnd, Status: out.Result, Duration: out.Duration}
	if err != nil {
		end.Message = err.Error()
	}
	b.emit(end)
	// The rest goes after the end is told: no container of the build is
	// left to use it, and its removal (a second and more on a busy engine)
	// is no part of the build.
	b.removeRest()
	return out, err
}

// run prepares the workspace and the script container, serves the job API
// and runs the script to its end, returning its exit code.
func (b *build) run() (int, error) {
	ctx, cfg, start := b.ctx, b.r.cfg, time.Now()
	// The source is fetched while the workspace and the script container
	// are made: neither needs it until the workspace is filled.
	fetched := b.fetch()
	defer fetched.stop()
	// So is the build's network (it costs the engine a second here, loaded),
	// until the jobs need it; waited for on every return, so that cleanup
	// finds it made.
	networked := make(chan error, 1)
	go func() { networked <- b.makeNetwork(ctx) }()
	defer func() {
		if networked != nil {
			<-networked
		}
	}()
	image, err := b.r.Prepare(ctx)
	if err != nil {
		return -1, err
	}
	// A short name of its own: the socket's path must stay short.
	if err := ownDir(b.r.apiRoot()); err != nil {
		return -1, fmt.Errorf("job API directory: %w", err)
	}
	if b.apiDir, err = os.MkdirTemp(b.r.apiRoot(), ""); err != nil {
		return -1, fmt.Errorf("job API directory: %w", err)
	}
	if err := b.makeWorkspace(ctx); err != nil {
		return -1, err
	}
	token := newID() + newID()
	env := []string{"MONKEYCI_API=unix://" + scriptSocket, "MONKEYCI_TOKEN=" + token, "MONKEYCI_BUILD_ID=" + b.spec.ID}
	mounts := []Mount{{Volume: b.volume, Target: workspacePath}, {Source: b.apiDir, Target: scriptAPIDir}}
	if b.spec.Source != "" {
		mounts = append(mounts, Mount{Source: b.spec.Source, Target: sourcePath, ReadOnly: true})
		if b.spec.Snapshot {
			// The script reads the build files there, as fetched: jobs
			// started ahead of it (ahead.go) may write in the workspace.
			env = append(env, "MONKEYCI_BUILD_FILES="+sourcePath)
		} else { // the script copies it in
			env = append(env, "MONKEYCI_SOURCE="+sourcePath)
		}
	}
	// The default script container is made while the source is fetched,
	// and started once the source shows it is the one wanted: a
	// .monkeyci/script.yaml may name another image or other resources.
	spec := ContainerSpec{
		Name:     "monkeyci-" + b.spec.ID + "-script",
		Image:    image,
		Cmd:      []string{"script"},
		Env:      env,
		WorkDir:  workspacePath,
		Labels:   b.labelsFor("script", ""),
		Mounts:   mounts,
		NanoCPUs: cfg.Script.MilliCPUs * 1e6,
		Memory:   cfg.Script.Memory,
		// No network: a script speaks to the agent through its socket, and
		// one on the build's bridge starts some 300 ms later.
		Network: "none",
	}
	confine(&spec, cfg.Pids)
	script, err := b.create(spec)
	if err != nil {
		return -1, fmt.Errorf("script container: %w", err)
	}
	// The pauser's container and share are settled below, before the job
	// API lets any call through (waitSource).
	b.pauser = &pauser{
		rt: cfg.Runtime, id: script, enabled: cfg.Pause, ledger: cfg.Ledger, script: cfg.Script,
		emit: b.emit, fail: b.cancel, log: cfg.Logger.Named("pause"),
	}
	if b.stopAPI, err = serveJobAPI(filepath.Join(b.apiDir, "job.sock"), token, b); err != nil {
		return -1, err
	}
	made := time.Since(start) // the workspace and the script container
	script, err = b.settleScript(fetched, spec, script)
	if err != nil {
		b.sourceFailed(err)
		return -1, err
	}
	b.pauser.id, b.pauser.script = script, b.script
	if err := b.pauser.hold(ctx); err != nil {
		err = fmt.Errorf("script container: %w", err)
		b.sourceFailed(err)
		return -1, err
	}
	if b.spec.Reserved != nil {
		b.spec.Reserved()
	}
	settled := time.Since(start) // and the fetch, and the pauser
	// Jobs join the build's network: made before the job API lets one start.
	err, networked = <-networked, nil
	if err != nil {
		b.sourceFailed(err)
		return -1, err
	}
	b.r.cfg.Logger.Debug("the script container is ready to start", "build", b.spec.ID,
		"made", made, "settled", settled, "networked", time.Since(start))
	b.params = b.spec.params()
	b.objects = borrowedObjects(b.spec.Source)
	close(b.sourced)
	b.awaitLaunched(b.startAhead())
	exit, err := b.runScript(script)
	return exit.Code, err
}

// makeWorkspace makes the build's workspace volume: empty, for the script
// to copy the source into, or an overlay on the source's snapshot, its
// changes in the build's own folder. An overlay is made while the source
// is fetched: the engine mounts it when the script container starts
// (its mounts never copy the image's files, which would mount it when
// the container is made), and the script starts once the fetch is over.
func (b *build) makeWorkspace(ctx context.Context) error {
	rt, labels := b.r.cfg.Runtime, b.labelsFor("workspace", "")
	if b.spec.Source == "" || !b.spec.Snapshot {
		if err := rt.CreateVolume(ctx, b.volume, labels); err != nil {
			return fmt.Errorf("workspace volume: %w", err)
		}
		return nil
	}
	upper, work := filepath.Join(b.dir, "workspace", "upper"), filepath.Join(b.dir, "workspace", "work")
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("workspace volume: %w", err)
		}
	}
	if err := rt.CreateOverlayVolume(ctx, b.volume, labels, b.spec.Source, upper, work); err != nil {
		return fmt.Errorf("workspace volume: %w", err)
	}
	return nil
}

// sourceFailed tells the job API's held calls that the build cannot go on.
func (b *build) sourceFailed(err error) {
	b.sourceErr = err
	close(b.sourced)
}

// fetching is BuildSpec.Fetch under way in the background.
type fetching struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// fetch starts BuildSpec.Fetch (if any) in the background.
func (b *build) fetch() *fetching {
	ctx, cancel := context.WithCancel(b.ctx)
	f := &fetching{cancel: cancel, done: make(chan error, 1)}
	if b.spec.Fetch == nil {
		f.done <- nil
	} else {
		go func() {
			start := time.Now()
			err := b.spec.Fetch(ctx)
			b.r.cfg.Logger.Debug("source fetched", "build", b.spec.ID, "took", time.Since(start), "error", err)
			f.done <- err
		}()
	}
	return f
}

// wait waits for the fetch's end and says how it went.
func (f *fetching) wait() error {
	f.once.Do(func() { f.err = <-f.done })
	return f.err
}

// stop cancels a fetch still under way and waits for it: nothing writes
// into the source once the build is over.
func (f *fetching) stop() {
	f.cancel()
	_ = f.wait()
}

// endJobs stops the job API and every job still running or queued, and
// waits for them: a script that ends leaves no job behind.
func (b *build) endJobs() {
	if b.stopAPI != nil {
		b.stopAPI()
	}
	// Closed first: an action begun by a call still in flight is then
	// refused, or among those endActions ends.
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.endActions()
	if b.ctx.Err() == nil {
		b.stopServices() // the script is over: nothing needs them
	}
	b.stopJobs()
	b.wg.Wait()
}

// runScript starts the script container and waits for it to end.
func (b *build) runScript(id string) (Exit, error) {
	rt := b.r.cfg.Runtime
	b.emit(events.Event{Type: events.ScriptInitializing})
	if err := rt.Start(b.ctx, id); err != nil {
		return Exit{Code: -1}, fmt.Errorf("starting the script container: %w", err)
	}
	b.emit(events.Event{Type: events.ScriptStart})
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		_ = rt.Logs(b.ctx, id, outputWriter{b.rep, "", "out"}, outputWriter{b.rep, "", "err"})
	}()
	exit, err := rt.Wait(b.ctx, id)
	if err != nil {
		return Exit{Code: -1}, fmt.Errorf("script container: %w", err)
	}
	<-logsDone
	status := events.Success
	if exit.Code != 0 {
		status = events.Failure
	}
	b.emit(events.Event{Type: events.ScriptEnd, Status: status, Exit: events.ExitCode(exit.Code)})
	return exit, nil
}

// outcome says how the build went; called once every job has ended.
func (b *build) outcome(scriptExit int) Outcome {
	out := Outcome{Result: events.Success, ScriptExit: scriptExit}
	if b.pauser != nil {
		out.Pauses, out.Paused = b.pauser.stats()
	}
	failed, errored := false, false
	b.mu.Lock()
	for _, id := range b.order {
		jr := b.jobs[id]
		out.Jobs = append(out.Jobs, JobOutcome{ID: id, Result: jr.result.status, Exit: jr.result.exit, Message: jr.result.message, Duration: jr.duration})
		failed = failed || jr.result.status == events.Failure
		errored = errored || jr.result.status == events.Error
	}
	unclaimed := len(b.ahead)
	b.mu.Unlock()
	switch {
	case failed || scriptExit != 0 && !errored:
		out.Result = events.Failure
	case errored:
		out.Result = events.Error
	}
	if unclaimed > 0 && out.Result == events.Success {
		// The script did not ask for a job started ahead of it: what ran
		// is not what the build says.
		out.Result = events.Error
	}
	return out
}

// create makes a container and remembers it for cleanup.
func (b *build) create(spec ContainerSpec) (string, error) {
	id, err := b.r.cfg.Runtime.Create(b.ctx, spec)
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	b.made = append(b.made, id)
	b.mu.Unlock()
	return id, nil
}

// removeContainers removes the build's containers, on its own context.
func (b *build) removeContainers() (all bool) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	rt, log := b.r.cfg.Runtime, b.r.cfg.Logger
	if b.pauser != nil {
		b.pauser.close(ctx) // a frozen container cannot be killed cleanly
	}
	b.mu.Lock()
	made := append([]string(nil), b.made...)
	b.mu.Unlock()
	// Also whatever carries the build's label: a create canceled on the
	// wire may still have made a container, or be making it (the engine
	// may list one it does not yet let anyone remove): looked for again,
	// a little later, until none is left.
	labels := map[string]string{LabelBuild: b.spec.ID}
	for try := 0; ; try++ {
		listed, err := rt.ListContainers(ctx, labels)
		ids := append(made, listed...)
		made = nil
		switch {
		case err != nil: // the removals say it all
			return b.removeAll(ctx, ids)
		case len(ids) == 0:
			return true
		case try == 5:
			log.Warn("containers of the build are left", "build", b.spec.ID, "containers", ids)
			return false
		case try > 0:
			select {
			case <-ctx.Done():
				return false
			case <-time.After(time.Duration(try) * 100 * time.Millisecond):
			}
		}
		b.removeAll(ctx, ids)
	}
}

// removeAll removes the containers ids, side by side (each waits on the
// engine), and says whether all went.
func (b *build) removeAll(ctx context.Context, ids []string) bool {
	rt, log := b.r.cfg.Runtime, b.r.cfg.Logger
	slices.Sort(ids)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for _, id := range slices.Compact(ids) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rt.Remove(ctx, id); err != nil {
				failed.Store(true)
				log.Warn("could not remove container", "container", id, "error", err)
			}
		}()
	}
	wg.Wait()
	return !failed.Load()
}

// removeRest removes what the build made besides its containers: its
// workspace volume, its network and its files.
func (b *build) removeRest() {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	rt, log := b.r.cfg.Runtime, b.r.cfg.Logger
	if err := rt.RemoveVolume(ctx, b.volume); err != nil {
		log.Warn("could not remove volume", "volume", b.volume, "error", err)
	}
	if err := rt.RemoveNetwork(ctx, b.network()); err != nil {
		log.Warn("could not remove network", "network", b.network(), "error", err)
	}
	for _, dir := range []string{b.dir, b.apiDir} {
		if dir == "" { // not made
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("could not remove build directory", "dir", dir, "error", err)
		}
	}
}

func (b *build) labelsFor(role, job string) map[string]string {
	l := maps.Clone(b.labels)
	l[LabelRole] = role
	if job != "" {
		l[LabelJob] = job
	}
	return l
}

func (b *build) emit(e events.Event) {
	e.Build = b.spec.ID
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.rep.Event(e)
}

// outputWriter hands a container's output to the reporter.
type outputWriter struct {
	rep         Reporter
	job, stream string
}

func (w outputWriter) Write(p []byte) (int, error) {
	w.rep.Output(w.job, w.stream, append([]byte(nil), p...))
	return len(p), nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails: it crashes the program instead
	return hex.EncodeToString(b[:])
}

var errDuplicateJob = errors.New("a job with that id was already started")
