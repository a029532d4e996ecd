package view

import (
	"slices"

	"github.com/monkeyci/monkeyci/events"
)

// Job states, as JobNode.State and as the "state-*" CSS classes.
const (
	StateQueued   = "queued"
	StateRunning  = "running"
	StateSuccess  = "success"
	StateFailure  = "failure"
	StateError    = "error"
	StateCanceled = "canceled"
	StateSkipped  = "skipped"
	StateBlocked  = "blocked"
)

// JobNode is one job of a build: its dependencies as the script declared
// them and where it stands.
type JobNode struct {
	ID string
	// Deps are the job's dependencies, deduplicated, in declared order. A
	// dependency on a job never seen in the events is kept here; LayoutGraph
	// leaves it out of the drawing (see Node.Missing).
	Deps  []string
	State string
	// Action: the job is work the script did in its own container.
	Action bool
	// Expose are the ports of a service job.
	Expose []int
}

// Jobs returns every job seen in evs, in first-seen order. The latest job
// event decides the state; job/start up to job/end is running. Command and
// container events only prove a job is running when no job event said so.
func Jobs(evs []events.Event) []JobNode {
	var out []JobNode
	index := map[string]int{}
	for i := range evs {
		e := &evs[i]
		if e.Job == "" {
			continue
		}
		k, ok := index[e.Job]
		if !ok {
			k = len(out)
			index[e.Job] = k
			out = append(out, JobNode{ID: e.Job, State: StateQueued})
		}
		j := &out[k]
		if len(e.Deps) > 0 {
			j.Deps = cleanDeps(e.Deps)
		}
		j.Action = j.Action || e.Action
		if len(e.Expose) > 0 {
			j.Expose = e.Expose
		}
		switch e.Type {
		case events.JobPending, events.JobQueued, events.JobInitializing, events.JobUnblocked:
			j.State = StateQueued
		case events.JobStart, events.JobExecuted, events.JobReady:
			j.State = StateRunning
		case events.JobEnd:
			j.State = endState(e)
		case events.JobSkipped:
			j.State = StateSkipped
		case events.JobBlocked:
			j.State = StateBlocked
		case events.ContainerStart, events.CommandStart, events.CommandEnd:
			// The sidecar's events may race the job's own; they must not
			// turn an ended job back into a running one.
			if j.State == StateQueued {
				j.State = StateRunning
			}
		}
	}
	return out
}

// endState maps a job/end event to a state, guessing from the exit code
// when the status is missing or unknown.
func endState(e *events.Event) string {
	switch e.Status {
	case events.Success:
		return StateSuccess
	case events.Failure:
		return StateFailure
	case events.Error:
		return StateError
	case events.Canceled:
		return StateCanceled
	case events.Skipped:
		return StateSkipped
	}
	switch {
	case e.Exit == nil:
		return StateError
	case *e.Exit == 0:
		return StateSuccess
	default:
		return StateFailure
	}
}

// cleanDeps copies deps without blanks and duplicates.
func cleanDeps(deps []string) []string {
	out := make([]string, 0, len(deps))
	for _, d := range deps {
		// Dependency lists are short: a scan beats a map.
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

// knownState reports whether s is one of the job states (or "paused", the
// script container's), so it can be used as a CSS class as is.
func knownState(s string) bool {
	switch s {
	case StateQueued, StateRunning, StateSuccess, StateFailure, StateError,
		StateCanceled, StateSkipped, StateBlocked, statePaused:
		return true
	}
	return false
}

// stateClass returns s when it is a known state and "unknown" otherwise:
// states end up in class attributes, which must not carry arbitrary text.
func stateClass(s string) string {
	if knownState(s) {
		return s
	}
	return "unknown"
}
