package agent

import (
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/monkeyci/monkeyci/buildscript"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/jobapi"
	"github.com/monkeyci/monkeyci/script"
)

// startAhead starts the jobs a declarative build's script starts first
// (script.Opening) while the script container starts, so that the first
// job does not wait for that start (some 200 ms) and the script's round
// trip; the script then finds them started (claimAhead). Only where the
// workspace needs no script to fill it (an overlay on the source's
// snapshot). Build files the agent cannot read are the script's to tell:
// nothing starts ahead of it then. Called once sourced is closed; it
// returns the jobs it started.
func (b *build) startAhead() []*jobRun {
	if b.spec.Source == "" || !b.spec.Snapshot || b.kind != buildscript.Declarative {
		return nil
	}
	opening := b.opening()
	var started []*jobRun
	for _, j := range opening {
		spec := jobapi.JobToProto(j)
		job, err := jobapi.JobFromProto(spec) // as the script's call gives it
		if err != nil {
			break
		}
		b.mu.Lock()
		if b.ahead == nil {
			b.ahead = map[string]*jobapi.JobSpec{}
		}
		b.ahead[j.ID] = spec
		b.mu.Unlock()
		if err := b.startJob(job); err != nil {
			b.r.cfg.Logger.Debug("a job could not start ahead of the script", "build", b.spec.ID, "job", j.ID, "error", err)
			b.mu.Lock()
			delete(b.ahead, j.ID)
			b.mu.Unlock()
			break
		}
		b.mu.Lock()
		started = append(started, b.jobs[j.ID])
		b.mu.Unlock()
	}
	return started
}

// opening is what the build's script starts first, as it reads the same
// build files (the script container mounts the source as fetched, for
// them, and reads them there: what a job started ahead writes in the
// workspace changes nothing of it). The build files are the repository's,
// read on the agent's host: what the agent cannot read, or a fault of
// its own on them, starts nothing ahead, and the script tells the rest.
func (b *build) opening() (jobs []pipeline.Job) {
	defer func() {
		if p := recover(); p != nil {
			b.r.cfg.Logger.Error("reading the build files to start jobs ahead of the script failed", "build", b.spec.ID, "panic", p)
			jobs = nil
		}
	}()
	plan, err := pipeline.Load(b.spec.Source)
	if err != nil {
		return nil
	}
	jobs, err = script.Opening(plan, b.params)
	if err != nil {
		return nil
	}
	return jobs
}

// aheadWait bounds how long the script's start waits for the jobs
// started ahead of it (awaitLaunched): one that pulls its image, say,
// does not hold it back.
const aheadWait = time.Second

// awaitLaunched waits until the jobs started ahead have started their
// containers, or wait for capacity (which the script's pause may give),
// or have ended: side by side, the two starts slowed each other down
// (the job's took 490 ms, against 250 alone), and the script has
// nothing to do before those jobs run.
func (b *build) awaitLaunched(jobs []*jobRun) {
	timeout := time.NewTimer(aheadWait)
	defer timeout.Stop()
	for _, jr := range jobs {
		select {
		case <-jr.launched:
		case <-timeout.C:
			return
		case <-b.ctx.Done():
			return
		}
	}
}

// claimAhead says whether the script's start of job finds it started
// ahead, as the script asks it. Each is claimed once; a start that asks
// another job under its id is a duplicate, as ever.
func (b *build) claimAhead(job *jobapi.JobSpec) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	spec, ok := b.ahead[job.GetId()]
	if !ok {
		return false
	}
	delete(b.ahead, job.GetId())
	return proto.Equal(spec, job)
}
