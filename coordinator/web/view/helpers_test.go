package view

import (
	"fmt"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/events"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

func ev(typ events.Type, job string, d time.Duration) events.Event {
	return events.Event{Type: typ, Job: job, Time: at(d)}
}

// bigBuild is a build of n jobs, each depending on up to three earlier
// ones, with about 25 events per job: what the benchmarks chew on.
func bigBuild(n int) []events.Event {
	evs := []events.Event{ev(events.BuildStart, "", 0), ev(events.ScriptStart, "", time.Second)}
	t := 2 * time.Second
	for i := range n {
		id := fmt.Sprintf("job-%03d", i)
		var deps []string
		for _, k := range []int{i - 1, i / 2, i - 7} {
			if k >= 0 && k != i {
				deps = append(deps, fmt.Sprintf("job-%03d", k))
			}
		}
		evs = append(evs,
			events.Event{Type: events.JobQueued, Job: id, Deps: deps, Time: at(t)},
			ev(events.ScriptPaused, "", t+time.Millisecond),
			ev(events.JobInitializing, id, t+2*time.Millisecond),
			ev(events.JobStart, id, t+3*time.Millisecond),
			ev(events.ContainerStart, id, t+4*time.Millisecond))
		for c := range 9 {
			cmd := fmt.Sprint(c)
			evs = append(evs,
				events.Event{Type: events.CommandStart, Job: id, Command: cmd, Time: at(t + time.Duration(5+2*c)*time.Millisecond)},
				events.Event{Type: events.CommandEnd, Job: id, Command: cmd, Exit: events.ExitCode(0), Time: at(t + time.Duration(6+2*c)*time.Millisecond)})
		}
		evs = append(evs,
			ev(events.JobExecuted, id, t+30*time.Millisecond),
			events.Event{Type: events.JobEnd, Job: id, Status: events.Success, Exit: events.ExitCode(0), Time: at(t + 31*time.Millisecond)},
			events.Event{Type: events.ScriptResumed, Time: at(t + 32*time.Millisecond), Duration: 31 * time.Millisecond})
		t += 40 * time.Millisecond
	}
	return append(evs, ev(events.ScriptEnd, "", t), ev(events.BuildEnd, "", t+time.Millisecond))
}

// count is strings.Count, shorter.
func count(s, sub string) int { return strings.Count(s, sub) }
