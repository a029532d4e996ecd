package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
)

// Services: a job that exposes ports serves them to the build's other jobs,
// which reach it by its id as a host name on the build's network. The agent
// probes the ports from its host at the container's address; once all of
// them accept connections the service is ready and its dependents go on. A
// dependent with script lines has its container started beside the
// service's, its wrapper held at a gate (a FIFO in its job files) that the
// agent opens once the service is ready: so the dependent's first command
// follows the service's readiness by milliseconds, not by a container
// start. The service runs until it is stopped (StopJob, once its
// dependents are done, or the end of the script) and then counts as a
// success, unless it failed before.

// gateFile is the FIFO a dependent's wrapper reads one line from before its
// first command (sidecar/run.sh).
const gateFile = "gate"

// probeEvery is how often a service's ports are tried until they accept.
const probeEvery = 10 * time.Millisecond

// serviceStopGrace is how long a stopped service has to exit on SIGTERM:
// none. What it holds is thrown away with it, and a server that runs as
// its container's first process (busybox httpd, say) ignores SIGTERM, which
// would make every build wait out any grace.
const serviceStopGrace = 0

// serviceError says a service a job depends on cannot serve it.
type serviceError struct{ msg string }

func (e serviceError) Error() string { return e.msg }

// servicesOf returns the services among a job's dependencies.
func servicesOf(deps []*jobRun) []*jobRun {
	var out []*jobRun
	for _, d := range deps {
		if d.job.Service() {
			out = append(out, d)
		}
	}
	return out
}

// awaitReady waits until every service accepts connections, and fails when
// one ended before it did, or before the job that waits could start.
func (b *build) awaitReady(ctx context.Context, services []*jobRun) error {
	for _, s := range services {
		select {
		case <-s.ready:
		case <-s.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		select {
		case <-s.done:
			b.mu.Lock()
			res := s.result
			b.mu.Unlock()
			how := string(res.status)
			if res.message != "" {
				how = res.message
			}
			select {
			case <-s.ready:
				return serviceError{fmt.Sprintf("service %s ended (%s) before this job could start", s.job.ID, how)}
			default:
				return serviceError{fmt.Sprintf("service %s ended (%s) before it accepted connections on port %s", s.job.ID, how, pipeline.JoinPorts(s.job.Expose))}
			}
		default:
		}
	}
	return nil
}

// probe tries a service's ports, from its start on, until each accepts a
// connection, then marks it ready. It gives up when ctx ends (the service
// ended).
func (b *build) probe(ctx context.Context, id string, jr *jobRun) {
	var ip string
	for {
		var err error
		if ip, err = b.r.cfg.Runtime.Address(ctx, id, b.network()); err == nil {
			break // it has one once its start has set up its network
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(probeEvery):
		}
	}
	var dialer net.Dialer
	for _, port := range jr.job.Expose {
		addr := net.JoinHostPort(ip, strconv.Itoa(port))
		for {
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			conn, err := dialer.DialContext(dctx, "tcp", addr)
			cancel()
			if err == nil {
				conn.Close()
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(probeEvery):
			}
		}
	}
	b.emit(events.Event{Type: events.JobReady, Job: jr.job.ID, Expose: jr.job.Expose})
	close(jr.ready)
}

// stopJob asks a running service to stop; it then ends as a success unless
// it failed first. Stopping one that ended already does nothing.
func (b *build) stopJob(id string) error {
	b.mu.Lock()
	jr, ok := b.jobs[id]
	b.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("%w: no job %q was started in this build", errNoSuchJob, id)
	case !jr.job.Service():
		return fmt.Errorf("job %q exposes no port: only a service is stopped (a job ends on its own)", id)
	}
	jr.stopOnce.Do(func() { close(jr.stop) })
	return nil
}

// stopServices asks every service of the build to stop: the script has
// ended, so nothing needs them.
func (b *build) stopServices() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, jr := range b.jobs {
		if jr.job.Service() {
			jr.stopOnce.Do(func() { close(jr.stop) })
		}
	}
}

// serviceAddress waits until a service accepts connections and returns the
// address the build's jobs reach port at.
func (b *build) serviceAddress(ctx context.Context, id string, port int) (string, error) {
	b.mu.Lock()
	jr, ok := b.jobs[id]
	b.mu.Unlock()
	switch {
	case !ok:
		return "", fmt.Errorf("%w: no job %q was started in this build", errNoSuchJob, id)
	case !jr.job.Service():
		return "", fmt.Errorf("%w: job %q exposes no port", errNotExposed, id)
	}
	exposed := false
	for _, p := range jr.job.Expose {
		exposed = exposed || p == port
	}
	if !exposed {
		return "", fmt.Errorf("%w: job %q exposes %s, not %d", errNotExposed, id, pipeline.JoinPorts(jr.job.Expose), port)
	}
	b.pauser.awaitBegin()
	err := b.awaitReady(ctx, []*jobRun{jr})
	if ctx.Err() != nil {
		b.pauser.awaitOver(ctx)
	} else {
		b.pauser.awaitEnd(ctx)
	}
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(id, strconv.Itoa(port)), nil
}

var (
	errNoSuchJob  = errors.New("no such job")
	errNotExposed = errors.New("not exposed")
)

// makeGate makes the FIFO a dependent's wrapper waits at, and opens it
// read-write: the open does not wait for the wrapper, and what is written
// stays in the pipe while this end is open, even before the wrapper reads.
// Any user may read it: the job's image may run as any user.
func makeGate(filesDir string) (*os.File, error) {
	path := filepath.Join(filesDir, gateFile)
	if err := syscall.Mkfifo(path, 0o666); err != nil {
		return nil, fmt.Errorf("making its gate: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil { // past the umask
		return nil, fmt.Errorf("making its gate: %w", err)
	}
	// Non-blocking, so that a write can be given a deadline: the FIFO is
	// in the job's files, and a job may fill it before it is opened.
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening its gate: %w", err)
	}
	return f, nil
}

// gateWait bounds the write that opens a gate: a pipe takes a line at once
// unless the job filled it itself.
const gateWait = 5 * time.Second

// openGate writes the line the wrapper waits for. A job that filled its
// own gate does not hold the agent: the write fails after gateWait.
func openGate(gate *os.File) error {
	if err := gate.SetWriteDeadline(time.Now().Add(gateWait)); err != nil {
		return fmt.Errorf("opening its gate: %w", err)
	}
	if _, err := gate.WriteString("go\n"); err != nil {
		return fmt.Errorf("opening its gate (did the job write into %s?): %w", gateFile, err)
	}
	return nil
}
