package view

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/logorder"
)

// Command is one script line of a job.
type Command struct {
	Job, Index string // Index is the line's index: "0", "1", ...
	// Number is how a person counts it: from 1 ("1" for index "0").
	Number string
	// Line is the command's text, when the agent told it.
	Line       string
	Start, End time.Time
	Duration   time.Duration // 0 while running
	Exit       *int
	Running    bool // started and not ended
}

// Commands returns each job's commands from command/start and command/end,
// in index order. A command started again (a retried attempt) starts over.
func Commands(evs []events.Event) map[string][]Command {
	n := 0
	for i := range evs {
		if evs[i].Type == events.CommandStart {
			n++
		}
	}
	type key struct{ job, index string }
	at := make(map[key]int, n)
	all := make([]Command, 0, n)
	for i := range evs {
		e := &evs[i]
		if e.Job == "" || (e.Type != events.CommandStart && e.Type != events.CommandEnd) {
			continue
		}
		k := key{e.Job, e.Command}
		slot, ok := at[k]
		if !ok {
			slot = len(all)
			at[k] = slot
			all = append(all, Command{Job: e.Job, Index: e.Command, Number: logorder.Number(e.Command)})
		}
		c := &all[slot]
		switch e.Type {
		case events.CommandStart:
			*c = Command{Job: e.Job, Index: e.Command, Number: logorder.Number(e.Command), Line: e.Line, Start: e.Time, Running: true}
		case events.CommandEnd:
			c.End, c.Exit, c.Running = e.Time, e.Exit, false
			c.Duration = e.Duration
			if c.Duration <= 0 && !c.Start.IsZero() && c.End.After(c.Start) {
				c.Duration = c.End.Sub(c.Start)
			}
		}
	}
	// Sorted by job then index, each job's commands are a run of all.
	slices.SortStableFunc(all, func(a, b Command) int {
		return cmp.Or(strings.Compare(a.Job, b.Job), compareIndex(a.Index, b.Index))
	})
	out := map[string][]Command{}
	for len(all) > 0 {
		end := 1
		for end < len(all) && all[end].Job == all[0].Job {
			end++
		}
		out[all[0].Job] = all[:end:end]
		all = all[end:]
	}
	return out
}

// compareIndex orders numeric indexes as numbers ("9" before "10") and puts
// anything else after them, as text.
func compareIndex(a, b string) int {
	na, okA := parseIndex(a)
	nb, okB := parseIndex(b)
	switch {
	case okA && okB:
		return cmp.Compare(na, nb)
	case okA != okB:
		if okA {
			return -1
		}
		return 1
	default:
		return strings.Compare(a, b)
	}
}

// parseIndex parses a command index without allocating: it runs in sorts.
func parseIndex(s string) (uint64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + uint64(s[i]-'0')
	}
	return n, true
}
