package coordinator

import (
	"context"
	"fmt"

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
	c.mu.Lock()
	defer c.mu.Unlock()
	d := pool.Demand{Queued: len(c.queue)}
	for id, conn := range c.agents {
		if conn.instance == "" {
			continue
		}
		a := pool.Agent{ID: id, Name: conn.name, Instance: conn.instance, Builds: len(c.holds[id]), Draining: conn.room.draining}
		if a.Builds == 0 {
			a.IdleSince = conn.connected
			if last, ok := c.lastBusy[id]; ok && last.After(a.IdleSince) {
				a.IdleSince = last
			}
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
	c.mu.Lock()
	conn, ok := c.agents[id]
	if ok {
		conn.room.draining = true
		c.rooms.changed(conn.room)
	}
	c.mu.Unlock()
	if !ok {
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

// UsePool attaches the pool's scaler: `pool status` and the metrics show
// it. Called once, before the pool's first decision.
func (c *Coordinator) UsePool(v PoolView, info PoolInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pool, c.poolInfo = v, info
	c.metrics.registry.MustRegister(poolCollector{v})
}

// PoolDecided counts a decision of the pool's scaler (pool.Config.Decided).
func (c *Coordinator) PoolDecided(d pool.Decision) {
	c.metrics.poolDecisions.WithLabelValues(string(d.Type)).Add(float64(max(len(d.Instances), 1)))
}

func (s *AdminServer) PoolStatus(ctx context.Context, _ *fleet.PoolStatusRequest) (*fleet.PoolStatusResponse, error) {
	c := s.c
	c.mu.Lock()
	v, info := c.pool, c.poolInfo
	c.mu.Unlock()
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
