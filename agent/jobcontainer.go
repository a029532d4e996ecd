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
	exit, err := b.runContainer(ctx, &run)
	b.emit(events.Event{Type: events.JobExecuted, Job: j.ID})
	var unserved serviceError
	switch {
	case run.stoppedAtExit:
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
	if msg := b.save(id, j, spec.WorkDir, res.status == events.Success, caches); msg != "" && res.status == events.Success {
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
	// stoppedAtExit: the job, a service, had been asked to stop when its
	// container exited (set by runContainer).
	stoppedAtExit bool
}

// stopped says the job, a service, was asked to stop before its
// container was seen to exit.
func (r *containerRun) stopped() bool {
	select {
	case <-r.jr.stop: // closed for services only (stopJob)
		return true
	default:
		return false
	}
}

// runContainer starts a job's created container, follows its output (the
// wrapper's files, or the engine's log for a job without script lines)
// and waits for it to exit, time out, or (a service) be stopped.
func (b *build) runContainer(ctx context.Context, r *containerRun) (Exit, error) {
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
	err := rt.Start(ctx, id)
	r.jr.launch()
	if err != nil {
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
			err = openGate(r.gate)
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
	// Whether it was stopped is judged as it exits: a service that failed
	// on its own and is asked to stop after, while its output is read,
	// failed.
	r.stoppedAtExit = r.stopped()
	if timedOut() && !r.stoppedAtExit {
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
		Mounts:     append([]Mount{{Volume: b.volume, Target: workspacePath}}, b.objects...),
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

// Event takes an event of the job's wrapper. The event log is in the job's
// own files, which the job can write: whatever is in it is hostile. Only
// the wrapper's own kinds of event pass, rebuilt from the fields the
// wrapper writes, with line numbers that name the job's script lines; the
// rest (a forged job/end, a secret in a path) goes nowhere.
func (s *jobSink) Event(in events.Event) {
	switch in.Type {
	case events.ContainerStart, events.ContainerScriptEnd, events.CommandStart, events.CommandEnd:
	default:
		return
	}
	e := events.Event{Type: in.Type, Job: s.job, Time: time.Now(), Exit: in.Exit, Done: in.Done,
		Command: s.lineNumber(in.Command), Step: s.lineNumber(in.Step)}
	if (e.Type == events.CommandStart || e.Type == events.CommandEnd) && e.Command == "" {
		return // names no line of the job's script
	}
	switch in.Status {
	case events.Success, events.Failure, events.Error:
		e.Status = in.Status
	}
	if e.Type == events.CommandStart {
		if i, err := strconv.Atoi(e.Command); err == nil {
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

// lineNumber is n when it names one of the job's script lines ("0", "1"...),
// else "".
func (s *jobSink) lineNumber(n string) string {
	if i, err := strconv.Atoi(n); err == nil && i >= 0 && i < len(s.lines) && strconv.Itoa(i) == n {
		return n
	}
	return ""
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
