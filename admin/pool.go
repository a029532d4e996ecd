package admin

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// PoolJSON is `pool status -o json`.
type PoolJSON struct {
	Configured bool               `json:"configured"`
	Provider   string             `json:"provider,omitempty"`
	Min        int32              `json:"min"`
	Max        int32              `json:"max"`
	Idle       int32              `json:"idle"`
	Desired    int32              `json:"desired"`
	Instances  []PoolInstanceJSON `json:"instances"`
	Decisions  []PoolDecisionJSON `json:"decisions"`
}

// PoolInstanceJSON is one instance of the pool.
type PoolInstanceJSON struct {
	ID        string     `json:"id"`
	Phase     string     `json:"phase"`
	Agent     string     `json:"agent,omitempty"`
	AgentName string     `json:"agent_name,omitempty"`
	Connected bool       `json:"connected"`
	Builds    int32      `json:"builds"`
	Draining  bool       `json:"draining"`
	Created   *time.Time `json:"created"`
	Seen      *time.Time `json:"seen"`
}

// PoolDecisionJSON is one decision of the pool's scaler.
type PoolDecisionJSON struct {
	Time      *time.Time `json:"time"`
	Type      string     `json:"type"`
	Instances []string   `json:"instances"`
	Reason    string     `json:"reason"`
}

// Pool is a pool status in -o json.
func Pool(p *fleet.PoolStatusResponse) PoolJSON {
	return PoolJSON{Configured: p.GetConfigured(), Provider: p.GetProvider(), Min: p.GetMin(), Max: p.GetMax(), Idle: p.GetIdle(), Desired: p.GetDesired(),
		Instances: each(p.GetInstances(), poolInstance), Decisions: each(p.GetDecisions(), poolDecision)}
}

func poolInstance(in *fleet.PoolInstance) PoolInstanceJSON {
	return PoolInstanceJSON{ID: in.GetId(), Phase: in.GetPhase(), Agent: in.GetAgent(), AgentName: in.GetAgentName(),
		Connected: in.GetConnected(), Builds: in.GetBuilds(), Draining: in.GetDraining(), Created: TimeOf(in.GetCreated()), Seen: TimeOf(in.GetSeen())}
}

func poolDecision(d *fleet.PoolDecision) PoolDecisionJSON {
	return PoolDecisionJSON{Time: TimeOf(d.GetTime()), Type: d.GetType(), Instances: append([]string{}, d.GetInstances()...), Reason: d.GetReason()}
}

// PoolTable writes the pool: a line of settings, a table of instances
// (INSTANCE PHASE AGENT STATE BUILDS AGE), and the last decisions.
func PoolTable(w io.Writer, p *fleet.PoolStatusResponse, now time.Time) error {
	if !p.GetConfigured() {
		_, err := fmt.Fprintln(w, "no pool: the coordinator runs without --pool")
		return err
	}
	fmt.Fprintf(w, "pool %s: %d instances, %d wanted (min %d, max %d, %d kept idle)\n\n",
		p.GetProvider(), len(p.GetInstances()), p.GetDesired(), p.GetMin(), p.GetMax(), p.GetIdle())
	tw := newTable(w)
	row(tw, "INSTANCE", "PHASE", "AGENT", "STATE", "BUILDS", "AGE")
	for _, in := range p.GetInstances() {
		agent, state := none, "not joined"
		if in.GetAgent() != "" {
			agent = in.GetAgentName()
			if agent == "" {
				agent = in.GetAgent()
			}
			state = "gone"
		}
		switch {
		case in.GetConnected() && in.GetDraining():
			state = "draining"
		case in.GetConnected() && in.GetBuilds() > 0:
			state = "busy"
		case in.GetConnected():
			state = "idle"
		}
		age := none
		if c := TimeOf(in.GetCreated()); c != nil {
			age = Age(now.Sub(*c))
		}
		row(tw, in.GetId(), cell(in.GetPhase()), agent, state, strconv.Itoa(int(in.GetBuilds())), age)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(p.GetDecisions()) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nlast decisions:")
	for _, d := range p.GetDecisions() {
		t := none
		if at := TimeOf(d.GetTime()); at != nil {
			t = at.Local().Format("15:04:05")
		}
		if _, err := fmt.Fprintf(w, "  %s %-14s %s: %s\n", t, d.GetType(), strings.Join(d.GetInstances(), ","), d.GetReason()); err != nil {
			return err
		}
	}
	return nil
}
