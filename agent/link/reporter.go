package link

import (
	"sync"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/logorder"
	"github.com/monkeyci/monkeyci/proto/fleet"
	"github.com/monkeyci/monkeyci/secret"
)

// reporter hands a build's events and output to the outbox, with the
// values of the build's secrets masked: nothing that leaves the agent
// holds them.
type reporter struct {
	box  *outbox
	ba   *fleet.BuildAttempt
	mask *secret.Masker // nil: nothing to mask

	mu      sync.Mutex
	streams map[streamKey]*maskedStream
	command map[string]string // per job: the command running, for the order index
}

// maskedStream is one output stream's masking state; its lock keeps what
// Write passes on and what Flush releases in order.
type maskedStream struct {
	mu sync.Mutex
	s  *secret.Stream
}

func newReporter(box *outbox, ba *fleet.BuildAttempt, hidden []string) *reporter {
	r := &reporter{box: box, ba: ba}
	if len(hidden) > 0 {
		if m := secret.NewMasker(hidden); !m.Empty() {
			r.mask, r.streams = m, map[streamKey]*maskedStream{}
		}
	}
	return r
}

func (r *reporter) Event(e events.Event) {
	e.Build = r.ba.GetBuildId()
	e.Line = r.text(e.Line)
	if e.Job != "" && (e.Type == events.CommandStart || e.Type == events.CommandEnd) {
		r.commandEvent(e)
	}
	if r.mask != nil {
		e.Message = r.text(e.Message)
		// A job's output is all read before its end: release what its
		// streams hold back, so the log is whole before the event.
		switch e.Type {
		case events.JobEnd:
			r.flush(e.Job)
		case events.ScriptEnd:
			r.flush("")
		}
	}
	r.box.event(r.ba, e)
}

// commandEvent keeps which command of the job runs, and marks its start in
// the job's order index. What the masks hold back of the command before is
// released first: its bytes are that command's. The wrapper's events are
// the job's to write: a command that is not an index is no command.
func (r *reporter) commandEvent(e events.Event) {
	r.flush(e.Job)
	cmd := e.Command
	if !logorder.ValidCommand(cmd) || e.Type == events.CommandEnd {
		cmd = ""
	}
	r.mu.Lock()
	if r.command == nil {
		r.command = map[string]string{}
	}
	r.command[e.Job] = cmd
	r.mu.Unlock()
	if cmd != "" {
		r.box.started(r.ba, e.Job, cmd, e.Line)
	}
}

func (r *reporter) Output(job, stream string, data []byte) {
	r.mu.Lock()
	cmd := r.command[job]
	r.mu.Unlock()
	if r.mask == nil {
		r.box.output(r.ba, job, cmd, stream, data)
		return
	}
	k := streamKey{job, stream}
	r.mu.Lock()
	ms := r.streams[k]
	if ms == nil {
		ms = &maskedStream{s: r.mask.Stream()}
		r.streams[k] = ms
	}
	r.mu.Unlock()
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if out := ms.s.Write(data); len(out) > 0 {
		r.box.output(r.ba, job, cmd, stream, out)
	}
}

// text masks a message.
func (r *reporter) text(s string) string {
	if r.mask == nil {
		return s
	}
	return r.mask.String(s)
}

// flush releases what the streams of job (all jobs: flushAll) hold back.
func (r *reporter) flush(job string) { r.flushWhere(func(k streamKey) bool { return k.job == job }) }

func (r *reporter) flushAll() { r.flushWhere(func(streamKey) bool { return true }) }

func (r *reporter) flushWhere(match func(streamKey) bool) {
	if r.mask == nil {
		return
	}
	r.mu.Lock()
	flush := map[streamKey]*maskedStream{}
	for k, ms := range r.streams {
		if match(k) {
			flush[k] = ms
		}
	}
	r.mu.Unlock()
	for k, ms := range flush {
		ms.mu.Lock()
		if out := ms.s.Flush(); len(out) > 0 {
			r.mu.Lock()
			cmd := r.command[k.job]
			r.mu.Unlock()
			r.box.output(r.ba, k.job, cmd, k.stream, out)
		}
		ms.mu.Unlock()
	}
}
