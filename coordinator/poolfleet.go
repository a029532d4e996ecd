package coordinator

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// PoolFleet is the coordinator as the pool's scaler sees it (pool.Fleet).
func (c *Coordinator) PoolFleet() pool.Fleet { return poolFleet{c} }

type poolFleet struct{ c *Coordinator }

// Demand counts the queue and what each connected pool agent holds.
func (f poolFleet) Demand() pool.Demand {
	c := f.c
	d := pool.Demand{Queued: c.dispatcher.queued()}
	for _, s := range c.agents.states() {
		if s.instance == "" {
			continue
		}
		a := pool.Agent{ID: s.id, Name: s.name, Instance: s.instance, Builds: len(s.builds), Draining: s.draining}
		if a.Builds == 0 {
			a.IdleSince = s.idleSince
		}
		d.Agents = append(d.Agents, a)
	}
	return d
}

// Drain stops a pool agent taking builds, as `agents drain` does.
func (f poolFleet) Drain(id string) error { return f.c.drainAgent(id) }

// drainAgent marks a connected agent draining, so the dispatcher sends it
// nothing more, and tells it.
func (c *Coordinator) drainAgent(id string) error {
	conn := c.agents.drain(id)
	if conn == nil {
		return fmt.Errorf("agent %s is not connected", id)
	}
	conn.send(&fleet.CoordinatorMessage{Msg: &fleet.CoordinatorMessage_Drain{Drain: &fleet.Drain{}}})
	c.poke()
	return nil
}

// PoolView is the pool as the coordinator shows it (the scaler).
type PoolView interface {
	Status() pool.State
}

// PoolInfo says how a pool was configured, for `pool status`.
type PoolInfo struct {
	Provider       string
	Min, Max, Idle int
}

// attachedPool is the agent pool's scaler, when there is one (UsePool).
type attachedPool struct {
	mu   sync.Mutex
	view PoolView
	info PoolInfo
}

func (p *attachedPool) get() (PoolView, PoolInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.view, p.info
}

// UsePool attaches the pool's scaler: `pool status` and the metrics show
// it. Called once, before the pool's first decision.
func (c *Coordinator) UsePool(v PoolView, info PoolInfo) {
	c.pool.mu.Lock()
	defer c.pool.mu.Unlock()
	c.pool.view, c.pool.info = v, info
	c.metrics.registry.MustRegister(poolCollector{v})
}

// PoolDecided counts a decision of the pool's scaler (pool.Config.Decided).
func (c *Coordinator) PoolDecided(d pool.Decision) {
	c.metrics.poolDecisions.WithLabelValues(string(d.Type)).Add(float64(max(len(d.Instances), 1)))
}

func (s *AdminServer) PoolStatus(ctx context.Context, r *fleet.PoolStatusRequest) (*fleet.PoolStatusResponse, error) {
	c := s.c
	if !c.Leading() { // the pool's scaler runs on the leader
		return forward(ctx, c, func(ctx context.Context, api fleet.AdminClient) (*fleet.PoolStatusResponse, error) {
			return api.PoolStatus(ctx, r)
		})
	}
	v, info := c.pool.get()
	if v == nil {
		return &fleet.PoolStatusResponse{}, nil
	}
	st := v.Status()
	agents := c.PoolFleet().Demand().ByInstance()
	resp := &fleet.PoolStatusResponse{Configured: true, Provider: info.Provider, Min: int32(info.Min), Max: int32(info.Max), Idle: int32(info.Idle), Desired: int32(st.Desired)}
	for _, t := range st.Sorted() {
		in := &fleet.PoolInstance{Id: t.ID, Phase: string(t.Phase), Agent: t.Agent, Draining: t.Draining, Created: timestamppb.New(t.Created)}
		if !t.Seen.IsZero() {
			in.Seen = timestamppb.New(t.Seen)
		}
		if a, ok := agents[t.ID]; ok {
			in.Connected, in.Agent, in.AgentName, in.Builds, in.Draining = true, a.ID, a.Name, int32(a.Builds), in.Draining || a.Draining
		} else if in.Agent != "" { // gone: its name is in the store
			if a, err := c.cfg.Store.GetAgent(ctx, in.Agent); err == nil {
				in.AgentName = a.Name
			}
		}
		resp.Instances = append(resp.Instances, in)
	}
	for _, d := range st.Decisions {
		resp.Decisions = append(resp.Decisions, &fleet.PoolDecision{Time: timestamppb.New(d.Time), Type: string(d.Type), Instances: d.Instances, Reason: d.Reason})
	}
	return resp, nil
}
