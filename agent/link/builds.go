package link

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// running is an attempt the agent runs, from its assignment to its end.
type running struct {
	ba     *fleet.BuildAttempt
	cancel context.CancelFunc
	// reserved: its script holds its share of the ledger. Until then the
	// heartbeat counts that share as taken, or the coordinator would see
	// room that the build is about to fill and send another.
	reserved bool
}

// start runs an assigned attempt in the background.
func (l *Link) start(ctx context.Context, a *fleet.Assign) {
	ba := a.GetBuild()
	l.mu.Lock()
	if _, ok := l.builds[key(ba)]; ok {
		l.mu.Unlock()
		return // a repeated assignment
	}
	if l.draining { // it crossed the drain: hand it back at once
		l.mu.Unlock()
		l.box.push(&fleet.AgentMessage{Msg: &fleet.AgentMessage_Decline{Decline: &fleet.Decline{Build: ba, Reason: "the agent is draining"}}})
		return
	}
	bctx, cancel := context.WithCancel(ctx)
	r := &running{ba: ba, cancel: cancel}
	l.builds[key(ba)] = r
	l.changedLocked()
	l.mu.Unlock()
	l.box.open(ba)
	l.box.push(&fleet.AgentMessage{Msg: &fleet.AgentMessage_Accept{Accept: &fleet.Accept{Build: ba}}})
	l.runs.Add(1)
	go func() {
		defer l.runs.Done()
		defer func() {
			cancel()
			l.mu.Lock()
			delete(l.builds, key(ba))
			l.changedLocked()
			l.mu.Unlock()
			l.box.wake()
		}()
		result, msg, needs := l.run(bctx, a, func() {
			l.mu.Lock()
			r.reserved = true
			l.mu.Unlock()
		})
		l.box.end(ba, result, msg, needs)
	}()
}

// run fetches the source and runs the build; it returns the result, and
// the labels of the agent the build needs when it hands it back.
func (l *Link) run(ctx context.Context, a *fleet.Assign, reserved func()) (events.Result, string, map[string]string) {
	ba := a.GetBuild()
	var rep *reporter // made below, before the build runs
	src := source.Source{URL: a.GetSource().GetUrl(), Branch: a.GetSource().GetBranch(),
		Commit: a.GetSource().GetCommit(), Tag: a.GetSource().GetTag(), SSHKey: a.GetSource().GetSshKey()}
	if d := a.GetSource().Depth; d != nil {
		depth := int(*d)
		src.Depth = &depth
	}
	dir, local, err := source.WorkingTree(src)
	if err != nil {
		return events.Error, err.Error(), nil
	}
	// A working tree's facts are what the assignment says; a fetched
	// source's are read once it is fetched, changed files included.
	facts := &pipeline.Facts{Branch: src.Branch, Tag: src.Tag, Commit: src.Commit}
	spec := agent.BuildSpec{
		ID: specID(ba), Repo: a.GetRepo(), Source: dir, Params: a.GetParams(), Facts: facts,
		Secrets: a.GetSecrets(), Reserved: reserved, Unblockable: true,
		Cache: agent.CacheScope{Scope: a.GetCache().GetScope(), Fallback: a.GetCache().GetFallback()},
		Blobs: l.blobsOf(ba),
	}
	if !local {
		if spec.Source, err = os.MkdirTemp(l.cfg.StateDir, srcPattern); err != nil {
			return events.Error, fmt.Sprintf("making a source directory: %v", err), nil
		}
		defer os.RemoveAll(spec.Source)
		spec.Snapshot = l.cfg.Overlay != nil && l.cfg.Overlay(src)
		src.Link = spec.Snapshot // a folder of its own else: the script container mounts it from the start
		if spec.Snapshot {
			// The link holds the checkout it names: gone, the checkout is
			// the next build's to take.
			spec.Release = func() { _ = os.Remove(spec.Source) }
		}
		// Said in the build's log, as the script's: before its own.
		src.Tell = func(line string) { rep.Output("", "err", []byte("monkeyci: "+line+"\n")) }
		spec.Fetch = func(ctx context.Context) error {
			commit, err := l.cfg.Fetch(ctx, src, spec.Source)
			if err != nil {
				return err
			}
			f, err := source.FactsOf(ctx, spec.Source, src)
			if err != nil {
				// Not worth failing the build: unknown changes make every
				// `when: changed` hold.
				l.log.Warn("the changed files are unknown", "build", ba.GetBuildId(), "error", err)
				f.Commit = commit // FactsOf left the changes unknown
			}
			*facts = f
			return nil
		}
	}
	// The secrets' values, and the credential of the URL fetched, never
	// leave the agent in an event or a log line.
	hidden := append(source.Credentials(src.URL), source.KeyLines(src.SSHKey)...)
	for _, v := range a.GetSecrets() {
		hidden = append(hidden, v)
	}
	rep = newReporter(l.box, ba, hidden)
	out, err := l.cfg.Runner.Run(ctx, spec, rep)
	rep.flushAll()
	var elsewhere *agent.NeedsAgentError
	if errors.As(err, &elsewhere) {
		return out.Result, rep.text(err.Error()), elsewhere.Labels
	}
	if err != nil {
		return out.Result, rep.text(err.Error()), nil
	}
	return out.Result, "", nil
}

// stop cancels an attempt this agent runs.
func (l *Link) stop(ba *fleet.BuildAttempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.builds[key(ba)]; ok {
		r.cancel()
	}
}

// unblock passes a person's unblock to the attempt it names. One of
// another attempt (stale) or of an attempt already over is ignored: only
// the current attempt's script waits for it.
func (l *Link) unblock(u *fleet.Unblock) {
	l.mu.Lock()
	_, ok := l.builds[key(u.GetBuild())]
	l.mu.Unlock()
	if !ok {
		l.log.Info("ignoring an unblock of an attempt this agent does not run", "build", u.GetBuild().GetBuildId(),
			"attempt", u.GetBuild().GetAttempt(), "job", u.GetJob())
		return
	}
	if err := l.cfg.Runner.Unblock(specID(u.GetBuild()), u.GetJob()); err != nil {
		l.log.Warn("could not unblock a job", "job", u.GetJob(), "error", err)
	}
}

// specID is the runner's id of an attempt: attempts of one build never
// share containers or directories.
func specID(ba *fleet.BuildAttempt) string {
	return ba.GetBuildId() + "-" + strconv.Itoa(int(ba.GetAttempt()))
}
