package coordinator

import (
	"slices"

	"github.com/monkeyci/monkeyci/events"
)

// AgentUsage is how a connected agent's capacity is spent now, for people
// to see where the CPU goes: to jobs, to running scripts, or lent to jobs
// by paused scripts.
type AgentUsage struct {
	Agent    string
	Capacity Capacity
	// Free is what the agent last said it has free, less what was sent to
	// it since.
	Free Capacity
	// Builds are the attempts it holds; of their scripts, ScriptsPaused
	// are paused (their CPU lent to jobs) and ScriptsRunning are not.
	Builds         int
	ScriptsRunning int
	ScriptsPaused  int
	// Script is one script container's reservation (Config.Script).
	Script Capacity
	// Jobs is what the jobs take: the used capacity less the running
	// scripts' reservations, never below zero.
	Jobs Capacity
	// Pauses says whether the agent pauses waiting scripts at all.
	Pauses bool
}

// AgentUsage returns the usage of each connected agent, by agent id.
func (c *Coordinator) AgentUsage() map[string]AgentUsage {
	states := c.agents.states()
	out := make(map[string]AgentUsage, len(states))
	for _, s := range states {
		u := AgentUsage{Agent: s.id, Capacity: s.capacity, Free: s.free, Script: c.cfg.Script, Pauses: s.pauses}
		u.Builds, u.ScriptsPaused = len(s.builds), c.leases.pausedAmong(s.builds)
		u.ScriptsRunning = u.Builds - u.ScriptsPaused
		used := s.used()
		n := int64(u.ScriptsRunning)
		u.Jobs = Capacity{
			MilliCPUs: max(used.MilliCPUs-n*c.cfg.Script.MilliCPUs, 0),
			Memory:    max(used.Memory-n*c.cfg.Script.Memory, 0),
		}
		out[s.id] = u
	}
	return out
}

// pauseEvents are the events that say whether a build's script is paused.
var pauseEvents = []events.Type{events.ScriptPaused, events.ScriptResumed, events.ScriptEnd, events.BuildEnd}

// noteEvent takes in a newly stored event: a pause or resume of the script
// is kept on the attempt's lease (a later seq wins, so events that arrive
// out of order do not undo a newer one), and watchers are told.
func (c *Coordinator) noteEvent(e StoredEvent) {
	if slices.Contains(pauseEvents, e.Event.Type) {
		c.leases.notePause(e.BuildID, e.Attempt, e.Seq, e.Event.Type == events.ScriptPaused)
	}
	c.eventStored()
}
