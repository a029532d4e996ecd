package pool

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/events"
)

// Fleet is what the scaler reads from the coordinator and asks of it.
type Fleet interface {
	// Demand says how many builds wait, and what each connected agent
	// that runs on an instance holds.
	Demand() Demand
	// Drain stops an agent taking builds.
	Drain(agentID string) error
}

// Demand is the coordinator's side of one scaling step.
type Demand struct {
	Queued int
	Agents []Agent
}

// ByInstance indexes the agents by the instance they run on.
func (d Demand) ByInstance() map[string]Agent {
	m := make(map[string]Agent, len(d.Agents))
	for _, a := range d.Agents {
		m[a.Instance] = a
	}
	return m
}

// Agent is a connected agent that says which instance it runs on.
type Agent struct {
	ID       string
	Name     string
	Instance string
	Builds   int // builds it holds now
	Draining bool
	// IdleSince is when it last became empty (zero while it holds builds).
	IdleSince time.Time
}

// StateStore keeps the scaler's state across coordinator restarts.
type StateStore interface {
	LoadPool(ctx context.Context) (State, error)
	SavePool(ctx context.Context, s State) error
}

// Config sizes the pool. Desired agents = ceil((queued + running builds) /
// BuildsPerAgent) + Idle, clamped to [Min, Max].
type Config struct {
	Min, Max int
	// Idle is how many idle agents are kept warm beyond what is needed.
	Idle int
	// IdleTimeout is how long an agent beyond those may idle before it is
	// drained and removed.
	IdleTimeout time.Duration
	// BuildsPerAgent is how many builds one agent carries at once.
	BuildsPerAgent int
	// JoinTimeout: an instance whose agent has not joined (or has been gone)
	// this long is destroyed.
	JoinTimeout time.Duration
	// UpCooldown and DownCooldown space scale-ups and scale-ins (a
	// provider may list new instances late; the idle timeout already
	// keeps scale-ins from flapping).
	UpCooldown, DownCooldown time.Duration
	Logger                   hclog.Logger
	// Decided hears every decision (metrics, the event log).
	Decided func(Decision)
}

// Defaults for what a Config leaves zero.
const (
	// DefaultIdleTimeout: half an hour. Replaying a team's working day
	// (pool/sim, the shipped trace, 90 s boots) through this scaler with
	// one warm agent, 10 minutes left the bursts that come within a boot
	// of each other waiting (p95 41 s); 30 kept p95 at 0 s for 38% of the
	// instance-hours of a pool sized for the peak (10 minutes: 31%).
	DefaultIdleTimeout = 30 * time.Minute
	DefaultJoinTimeout = 5 * time.Minute
	DefaultUpCooldown  = 10 * time.Second
	// DefaultStep is the time between steps (--pool-step).
	DefaultStep = 5 * time.Second
	// saveTimeout bounds a step's save of the state.
	saveTimeout = 5 * time.Second
	// destroyAgain is how long a destroyed instance may stay listed
	// before it is destroyed again.
	destroyAgain = time.Minute
	// keptDecisions bounds the decisions kept for `pool status`.
	keptDecisions = 50
)

// Validate says what is wrong with a configuration, naming the flag.
func (c Config) Validate() error {
	switch {
	case c.Min < 0:
		return errors.New("--pool-min must be 0 or more")
	case c.Max < 1:
		return errors.New("--pool-max must be at least 1")
	case c.Min > c.Max:
		return fmt.Errorf("--pool-min (%d) is above --pool-max (%d)", c.Min, c.Max)
	case c.Idle < 0:
		return errors.New("--pool-idle must be 0 or more")
	case c.BuildsPerAgent < 1:
		return errors.New("a pool agent must fit at least one build: raise --pool-agent-cpus or --pool-agent-memory")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	if c.UpCooldown < 0 {
		c.UpCooldown = 0
	}
	if c.DownCooldown < 0 {
		c.DownCooldown = 0
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// Decision is one thing the scaler did, and why.
type Decision struct {
	Time      time.Time   `json:"time"`
	Type      events.Type `json:"type"`
	Instances []string    `json:"instances,omitempty"`
	Reason    string      `json:"reason"`
}

// Tracked is what the scaler remembers of one instance.
type Tracked struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Seen is when its agent was last connected (zero: never joined).
	Seen time.Time `json:"seen,omitzero"`
	// Agent is the agent's id once it joined.
	Agent string `json:"agent,omitempty"`
	// Draining: scale-in chose it; it is destroyed once its agent is idle.
	Draining bool `json:"draining,omitempty"`
	// Destroyed is when it was last destroyed (zero: not yet).
	Destroyed time.Time `json:"destroyed,omitzero"`
	// Phase is the provider's word, as of the last step.
	Phase Phase `json:"phase"`
}

// State is the scaler's durable state.
type State struct {
	Instances map[string]*Tracked `json:"instances"`
	LastUp    time.Time           `json:"last-up,omitzero"`
	LastDown  time.Time           `json:"last-down,omitzero"`
	Decisions []Decision          `json:"decisions,omitempty"`
	Desired   int                 `json:"desired"`
}

// Scaler sizes one pool. Step is one look at the provider and the fleet;
// Run steps on a ticker. Only one goroutine steps a scaler.
type Scaler struct {
	cfg      Config
	provider Provider
	fleet    Fleet
	store    StateStore
	state    State
	// fixed: the provider neither makes nor destroys instances (static).
	fixed bool

	mu    sync.Mutex // guards shown
	shown State      // the state as of the last step, for Status
}

// NewScaler loads the scaler's state, so a restarted coordinator goes on
// where it stopped: which instances it drained, when it last scaled.
func NewScaler(ctx context.Context, cfg Config, p Provider, f Fleet, st StateStore) (*Scaler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	state, err := st.LoadPool(ctx)
	if err != nil {
		return nil, fmt.Errorf("pool: loading its state: %w", err)
	}
	if state.Instances == nil {
		state.Instances = map[string]*Tracked{}
	}
	_, fixed := p.(Static) // its instances are given, not made
	sc := &Scaler{cfg: cfg.withDefaults(), provider: p, fleet: f, store: st, state: state, fixed: fixed}
	sc.shown = sc.snapshot()
	return sc, nil
}

// Status is the pool as of the last step: instances, wanted size, and the
// last decisions.
func (s *Scaler) Status() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shown
}

// Run steps every interval (DefaultStep for none) until ctx ends; a
// failing step is logged and tried again at the next.
func (s *Scaler) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultStep
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.Step(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("pool step failed; trying again", "in", every, "error", err)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// Step reconciles the provider's instances with the connected agents,
// destroys what must go, and scales up or in. Its state is saved at the
// end of every step, also a failed one.
func (s *Scaler) Step(ctx context.Context, now time.Time) (err error) {
	defer func() {
		shown := s.snapshot()
		s.mu.Lock()
		s.shown = shown
		s.mu.Unlock()
		// Saved also when ctx ended (the server closing): what the step
		// did (a destroy, a drain) must outlive it.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), saveTimeout)
		defer cancel()
		if serr := s.store.SavePool(sctx, shown); serr != nil && err == nil {
			err = fmt.Errorf("pool: saving its state: %w", serr)
		}
	}()
	listed, err := s.provider.List(ctx)
	if err != nil {
		return fmt.Errorf("pool: listing instances: %w", err)
	}
	demand := s.fleet.Demand()
	agents := demand.ByInstance()
	s.reconcile(listed, agents, now)
	if s.fixed {
		s.state.Desired = len(listed)
		return nil
	}
	if err := s.destroyFinished(ctx, agents, now); err != nil {
		return err
	}
	return s.size(ctx, demand, agents, now)
}

// reconcile makes the tracked instances those the provider lists: new
// ones (made by an earlier run, or by hand) are adopted, gone ones and
// their agents forgotten.
func (s *Scaler) reconcile(listed []Instance, agents map[string]Agent, now time.Time) {
	present := map[string]bool{}
	for _, in := range listed {
		present[in.ID] = true
		t := s.state.Instances[in.ID]
		if t == nil {
			created := in.Created
			if created.IsZero() || created.After(now) {
				created = now
			}
			t = &Tracked{ID: in.ID, Created: created}
			s.state.Instances[in.ID] = t
		}
		t.Phase = in.Phase
		if !t.Destroyed.IsZero() {
			t.Phase = Stopping
		}
		if a, ok := agents[in.ID]; ok {
			t.Seen, t.Agent = now, a.ID
		}
	}
	for id := range s.state.Instances {
		if !present[id] {
			s.cfg.Logger.Info("instance gone; forgotten", "instance", id)
			delete(s.state.Instances, id)
		}
	}
}

// destroyFinished destroys instances that are done: drained with an idle
// agent (or none left), or whose agent never joined or has been gone for
// the join timeout. A busy agent's instance is never destroyed. An
// instance already being destroyed is asked again after a while, without
// a new decision: a provider may have stopped it without removing it (an
// exited agent's container), or lost the request.
func (s *Scaler) destroyFinished(ctx context.Context, agents map[string]Agent, now time.Time) error {
	var errs []error
	for _, t := range s.state.Sorted() {
		a, connected := agents[t.ID]
		var reason string
		switch {
		case connected && a.Builds > 0:
			continue
		case !t.Destroyed.IsZero():
			if now.Sub(t.Destroyed) < destroyAgain {
				continue
			}
		case t.Draining && connected:
			reason = "drained and idle"
		case t.Draining:
			reason = "drained; its agent has left"
		case !connected && t.Seen.IsZero() && now.Sub(t.Created) >= s.cfg.JoinTimeout:
			reason = fmt.Sprintf("no agent joined within %s", s.cfg.JoinTimeout)
		case !connected && !t.Seen.IsZero() && now.Sub(t.Seen) >= s.cfg.JoinTimeout:
			reason = fmt.Sprintf("its agent has been gone for %s", s.cfg.JoinTimeout)
		default:
			continue
		}
		if err := s.provider.Destroy(ctx, t.ID); err != nil {
			errs = append(errs, fmt.Errorf("pool: destroying %s: %w", t.ID, err))
			continue
		}
		first := t.Destroyed.IsZero()
		t.Destroyed, t.Phase = now, Stopping
		if first {
			s.decide(Decision{Time: now, Type: events.PoolDestroy, Instances: []string{t.ID}, Reason: reason})
		}
	}
	return errors.Join(errs...)
}

// size compares the agents wanted with those there are and scales up, or
// drains idle agents beyond the wanted ones.
func (s *Scaler) size(ctx context.Context, d Demand, agents map[string]Agent, now time.Time) error {
	running, active := 0, 0
	for _, t := range s.state.Instances {
		if t.Draining || t.Phase == Stopping { // destroyed ones are stopping
			continue
		}
		active++
		running += agents[t.ID].Builds
	}
	need := d.Queued + running
	desired := min(max((need+s.cfg.BuildsPerAgent-1)/s.cfg.BuildsPerAgent+s.cfg.Idle, s.cfg.Min), s.cfg.Max)
	s.state.Desired = desired
	why := fmt.Sprintf("%d queued, %d running, %d per agent, %d kept idle: %d wanted, %d there", d.Queued, running, s.cfg.BuildsPerAgent, s.cfg.Idle, desired, active)
	switch {
	case desired > active && now.Sub(s.state.LastUp) >= s.cfg.UpCooldown:
		made, err := s.provider.Create(ctx, desired-active)
		s.state.LastUp = now
		var ids []string
		for _, in := range made {
			ids = append(ids, in.ID)
			s.state.Instances[in.ID] = &Tracked{ID: in.ID, Created: now, Phase: in.Phase}
		}
		if len(made) > 0 {
			s.decide(Decision{Time: now, Type: events.PoolScaleUp, Instances: ids, Reason: why})
		}
		if err != nil {
			return fmt.Errorf("pool: creating %d instances: %w", desired-active, err)
		}
	case desired < active && now.Sub(s.state.LastDown) >= s.cfg.DownCooldown:
		return s.drainIdle(active-desired, agents, now, why)
	}
	return nil
}

// drainIdle drains up to n agents that have idled past the idle timeout,
// the longest idle first; their instances go at a later step, once the
// agents are seen idle and drained.
func (s *Scaler) drainIdle(n int, agents map[string]Agent, now time.Time, why string) error {
	var idle []Agent
	for _, t := range s.state.Instances {
		a, ok := agents[t.ID]
		if ok && !t.Draining && t.Phase != Stopping && a.Builds == 0 && !a.IdleSince.IsZero() && now.Sub(a.IdleSince) >= s.cfg.IdleTimeout {
			idle = append(idle, a)
		}
	}
	// Longest idle first; ties in a stable order, so a run is repeatable.
	sort.Slice(idle, func(i, j int) bool {
		if !idle[i].IdleSince.Equal(idle[j].IdleSince) {
			return idle[i].IdleSince.Before(idle[j].IdleSince)
		}
		return idle[i].Instance < idle[j].Instance
	})
	var ids []string
	var errs []error
	for _, a := range idle[:min(n, len(idle))] {
		if err := s.fleet.Drain(a.ID); err != nil {
			errs = append(errs, fmt.Errorf("pool: draining agent %s: %w", a.ID, err))
			continue
		}
		s.state.Instances[a.Instance].Draining = true
		ids = append(ids, a.Instance)
	}
	if len(ids) > 0 {
		s.state.LastDown = now
		s.decide(Decision{Time: now, Type: events.PoolScaleIn, Instances: ids, Reason: fmt.Sprintf("%s; idle for %s or more", why, s.cfg.IdleTimeout)})
	}
	return errors.Join(errs...)
}

func (s *Scaler) decide(d Decision) {
	s.cfg.Logger.Info("pool decision", "type", d.Type, "instances", d.Instances, "reason", d.Reason)
	s.state.Decisions = append(s.state.Decisions, d)
	if len(s.state.Decisions) > keptDecisions {
		s.state.Decisions = s.state.Decisions[len(s.state.Decisions)-keptDecisions:]
	}
	if s.cfg.Decided != nil {
		s.cfg.Decided(d)
	}
}

// Sorted returns the tracked instances in creation order.
func (st State) Sorted() []*Tracked {
	out := make([]*Tracked, 0, len(st.Instances))
	for _, t := range st.Instances {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// snapshot is a deep copy of the state, to save or to show.
func (s *Scaler) snapshot() State {
	c := s.state
	c.Instances = make(map[string]*Tracked, len(s.state.Instances))
	for id, t := range s.state.Instances {
		tc := *t
		c.Instances[id] = &tc
	}
	c.Decisions = append([]Decision(nil), s.state.Decisions...)
	return c
}
