package view

import (
	"reflect"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/events"
)

func TestJobs(t *testing.T) {
	s := time.Second
	evs := []events.Event{
		ev(events.BuildStart, "", 0),
		{Type: events.JobQueued, Job: "build", Time: at(s)},
		{Type: events.JobQueued, Job: "test", Deps: []string{"build", "build", "", "lint"}, Time: at(s)},
		ev(events.JobStart, "build", 2*s),
		ev(events.JobQueued, "deploy", 2*s),
		ev(events.JobBlocked, "deploy", 3*s),
		{Type: events.JobEnd, Job: "build", Status: events.Success, Time: at(4 * s)},
		ev(events.JobStart, "test", 4*s),
		ev(events.JobExecuted, "test", 5*s),
		ev(events.JobSkipped, "docs", 5*s),
		ev(events.JobQueued, "bench", 5*s),
		ev(events.CommandStart, "bench", 6*s), // the sidecar says it runs
		{Type: events.JobEnd, Job: "flaky", Exit: events.ExitCode(3), Time: at(6 * s)},
		{Type: events.JobEnd, Job: "gone", Status: events.Canceled, Time: at(6 * s)},
		{Type: events.JobEnd, Job: "late", Status: events.Error, Time: at(6 * s)},
		ev(events.CommandEnd, "late", 7*s), // must not revive an ended job
		{Type: events.JobQueued, Job: "pack", Action: true, Time: at(7 * s)},
		ev(events.JobStart, "pack", 7*s),
	}
	want := []JobNode{
		{ID: "build", State: StateSuccess},
		{ID: "test", Deps: []string{"build", "lint"}, State: StateRunning},
		{ID: "deploy", State: StateBlocked},
		{ID: "docs", State: StateSkipped},
		{ID: "bench", State: StateRunning},
		{ID: "flaky", State: StateFailure},
		{ID: "gone", State: StateCanceled},
		{ID: "late", State: StateError},
		{ID: "pack", State: StateRunning, Action: true},
	}
	if got := Jobs(evs); !reflect.DeepEqual(got, want) {
		t.Errorf("Jobs:\n got %+v\nwant %+v", got, want)
	}
}

func TestJobsUnblockedAndRetried(t *testing.T) {
	evs := []events.Event{
		ev(events.JobQueued, "a", 0),
		ev(events.JobBlocked, "a", 1),
		ev(events.JobUnblocked, "a", 2),
	}
	if got := Jobs(evs)[0].State; got != StateQueued {
		t.Errorf("unblocked job is %q, want queued", got)
	}
	evs = append(evs, events.Event{Type: events.JobEnd, Job: "a", Status: events.Failure}, ev(events.JobQueued, "a", 5), ev(events.JobStart, "a", 6))
	if got := Jobs(evs); len(got) != 1 || got[0].State != StateRunning {
		t.Errorf("a job queued again: %+v, want one running job", got)
	}
	if got := Jobs(nil); len(got) != 0 {
		t.Errorf("Jobs(nil) = %+v", got)
	}
}
