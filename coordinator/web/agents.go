package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// The agents page updates on builds' changes, at most once a second, and
// every 5 s for the heartbeats' news.
const (
	agentsGap  = time.Second
	agentsTick = 5 * time.Second
)

// agentView is an agent as its row shows it.
type agentView struct {
	ID, Name, State, Version string
	Labels                   []string
	LastSeen                 time.Time
	Connected                bool
	Usage                    coordinator.AgentUsage
	// Bar splits the agent's CPU: jobs, paused scripts' CPU lent to jobs,
	// running scripts, free.
	Bar []segment
}

// segment is a part of a capacity bar, in percent of the capacity.
type segment struct {
	Kind    string
	Percent float64
	Title   string
}

type agentsData struct {
	Session session
	Agents  []agentView
	Pool    *fleet.PoolStatusResponse
}

func (s *Server) agentsPage(w http.ResponseWriter, r *http.Request, ss session) {
	d, err := s.agentsData(r.Context(), ss)
	if err != nil {
		s.log.Error("listing agents", "error", err)
		s.errorPage(w, http.StatusInternalServerError, ss, "The agents could not be read.")
		return
	}
	s.render(w, http.StatusOK, "agents", d)
}

func (s *Server) agentsEvents(w http.ResponseWriter, r *http.Request, ss session) {
	s.serve(w, r, watch{gap: agentsGap, every: agentsTick, render: func(ctx context.Context) (map[string]string, error) {
		d, err := s.agentsData(ctx, ss)
		if err != nil {
			return nil, err
		}
		out := map[string]string{}
		if out["agents-rows"], err = s.fragment("agents", "agent-rows", d); err != nil {
			return nil, err
		}
		if out["agents-pool"], err = s.fragment("agents", "pool", d); err != nil {
			return nil, err
		}
		return out, nil
	}})
}

func (s *Server) agentsData(ctx context.Context, ss session) (agentsData, error) {
	list, err := s.admin.ListAgents(ctx, &fleet.ListAgentsRequest{})
	if err != nil {
		return agentsData{}, err
	}
	usage := s.c.AgentUsage()
	d := agentsData{Session: ss}
	for _, a := range list.GetAgents() {
		v := agentView{ID: a.GetId(), Name: a.GetName(), State: a.GetState(), Version: a.GetVersion(), LastSeen: a.GetLastSeen().AsTime()}
		for k, val := range a.GetLabels() {
			v.Labels = append(v.Labels, k+"="+val)
		}
		slices.Sort(v.Labels)
		if u, ok := usage[a.GetId()]; ok {
			v.Connected, v.Usage, v.Bar = true, u, bar(u)
		}
		d.Agents = append(d.Agents, v)
	}
	// Connected agents first, then by name.
	slices.SortStableFunc(d.Agents, func(a, b agentView) int {
		if a.Connected != b.Connected {
			if a.Connected {
				return -1
			}
			return 1
		}
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	if pool, err := s.admin.PoolStatus(ctx, &fleet.PoolStatusRequest{}); err == nil && pool.GetConfigured() {
		d.Pool = pool
	}
	return d, nil
}

// bar splits an agent's CPU. A paused script holds no CPU: what it had
// went to jobs, so that much of the jobs' share is drawn as lent.
func bar(u coordinator.AgentUsage) []segment {
	total := u.Capacity.MilliCPUs
	if total <= 0 {
		return nil
	}
	free := min(max(u.Free.MilliCPUs, 0), total)
	scripts := min(int64(u.ScriptsRunning)*u.Script.MilliCPUs, total-free)
	jobs := min(u.Jobs.MilliCPUs, total-free-scripts)
	lent := min(int64(u.ScriptsPaused)*u.Script.MilliCPUs, jobs)
	pct := func(m int64) float64 { return float64(m) * 100 / float64(total) }
	return []segment{
		{"jobs", pct(jobs - lent), fmt.Sprintf("jobs: %s CPUs", cpus(jobs-lent))},
		{"paused", pct(lent), fmt.Sprintf("%d paused scripts: %s CPUs lent to jobs", u.ScriptsPaused, cpus(lent))},
		{"scripts", pct(scripts), fmt.Sprintf("%d running scripts: %s CPUs", u.ScriptsRunning, cpus(scripts))},
		{"free", pct(free), fmt.Sprintf("free: %s CPUs", cpus(free))},
	}
}
