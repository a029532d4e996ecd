package view

import (
	"reflect"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/events"
)

func TestCommands(t *testing.T) {
	s := time.Second
	cmd := func(typ events.Type, job, index string, d time.Duration, exit *int) events.Event {
		return events.Event{Type: typ, Job: job, Command: index, Time: at(d), Exit: exit}
	}
	evs := []events.Event{
		ev(events.JobStart, "a", 0),
		{Type: events.CommandStart, Job: "a", Command: "0", Line: "make", Time: at(s)},
		cmd(events.CommandEnd, "a", "0", 3*s, events.ExitCode(0)),
		cmd(events.CommandStart, "b", "0", 3*s, nil),
		cmd(events.CommandStart, "a", "1", 3*s, nil),
		cmd(events.CommandEnd, "a", "1", 4*s, events.ExitCode(2)),
		cmd(events.CommandStart, "a", "10", 5*s, nil), // sorts after "2"
		cmd(events.CommandStart, "a", "2", 4*s, nil),
		cmd(events.CommandEnd, "a", "2", 5*s, events.ExitCode(0)),
		{Type: events.CommandEnd, Job: "c", Command: "0", Exit: events.ExitCode(1), Time: at(9 * s), Duration: 2 * s},
		cmd(events.CommandStart, "", "0", 0, nil), // no job: ignored
	}
	want := map[string][]Command{
		"a": {
			{Job: "a", Index: "0", Number: "1", Line: "make", Start: at(s), End: at(3 * s), Duration: 2 * s, Exit: events.ExitCode(0)},
			{Job: "a", Index: "1", Number: "2", Start: at(3 * s), End: at(4 * s), Duration: s, Exit: events.ExitCode(2)},
			{Job: "a", Index: "2", Number: "3", Start: at(4 * s), End: at(5 * s), Duration: s, Exit: events.ExitCode(0)},
			{Job: "a", Index: "10", Number: "11", Start: at(5 * s), Running: true},
		},
		"b": {{Job: "b", Index: "0", Number: "1", Start: at(3 * s), Running: true}},
		"c": {{Job: "c", Index: "0", Number: "1", End: at(9 * s), Duration: 2 * s, Exit: events.ExitCode(1)}},
	}
	if got := Commands(evs); !reflect.DeepEqual(got, want) {
		t.Errorf("Commands:\n got %+v\nwant %+v", got, want)
	}
}

func TestCommandRestarted(t *testing.T) {
	evs := []events.Event{
		{Type: events.CommandStart, Job: "a", Command: "0", Time: at(0)},
		{Type: events.CommandEnd, Job: "a", Command: "0", Time: at(time.Second), Exit: events.ExitCode(1)},
		{Type: events.CommandStart, Job: "a", Command: "0", Time: at(2 * time.Second)},
	}
	got := Commands(evs)["a"]
	if len(got) != 1 || !got[0].Running || got[0].Exit != nil || !got[0].Start.Equal(at(2*time.Second)) {
		t.Errorf("restarted command: %+v", got)
	}
}

func TestCompareIndex(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"9", "10", -1}, {"10", "9", 1}, {"1", "x", -1}, {"x", "1", 1}, {"a", "b", -1}, {"3", "3", 0}, {"", "0", 1}, {"-1", "0", 1}} {
		if got := compareIndex(c.a, c.b); got != c.want {
			t.Errorf("compareIndex(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
