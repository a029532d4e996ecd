package pool

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/events"
)

// fakeProvider keeps instances in memory.
type fakeProvider struct {
	instances map[string]Instance
	next      int
	destroyed []string
}

func (p *fakeProvider) List(context.Context) ([]Instance, error) {
	var out []Instance
	for _, in := range p.instances {
		out = append(out, in)
	}
	return out, nil
}

func (p *fakeProvider) Create(_ context.Context, n int) ([]Instance, error) {
	var made []Instance
	for range n {
		p.next++
		in := Instance{ID: fmt.Sprint("i", p.next), Phase: Starting}
		p.instances[in.ID] = in
		made = append(made, in)
	}
	return made, nil
}

func (p *fakeProvider) Destroy(_ context.Context, id string) error {
	delete(p.instances, id)
	p.destroyed = append(p.destroyed, id)
	return nil
}

// fakeFleet is the coordinator as the scaler sees it.
type fakeFleet struct {
	queued int
	agents map[string]*Agent // by instance
}

func (f *fakeFleet) Demand() Demand {
	d := Demand{Queued: f.queued}
	for _, a := range f.agents {
		d.Agents = append(d.Agents, *a)
	}
	return d
}

func (f *fakeFleet) Drain(id string) error {
	for _, a := range f.agents {
		if a.ID == id {
			a.Draining = true
			return nil
		}
	}
	return fmt.Errorf("no agent %s", id)
}

// join connects an agent on instance in, idle since at.
func (f *fakeFleet) join(in string, at time.Time) *Agent {
	a := &Agent{ID: "agent-" + in, Instance: in, IdleSince: at}
	f.agents[in] = a
	return a
}

type memStore struct{ saved State }

func (m *memStore) LoadPool(context.Context) (State, error) { return m.saved, nil }
func (m *memStore) SavePool(_ context.Context, s State) error {
	m.saved = s
	return nil
}

type world struct {
	t      *testing.T
	p      *fakeProvider
	f      *fakeFleet
	store  *memStore
	s      *Scaler
	now    time.Time
	events []events.Type
}

func newWorld(t *testing.T, cfg Config) *world {
	w := &world{t: t, p: &fakeProvider{instances: map[string]Instance{}}, f: &fakeFleet{agents: map[string]*Agent{}}, store: &memStore{},
		now: time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)}
	cfg.Decided = func(d Decision) { w.events = append(w.events, d.Type) }
	w.s = w.scaler(cfg)
	return w
}

func (w *world) scaler(cfg Config) *Scaler {
	s, err := NewScaler(context.Background(), cfg, w.p, w.f, w.store)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *world) step(after time.Duration) {
	w.t.Helper()
	w.now = w.now.Add(after)
	if err := w.s.Step(context.Background(), w.now); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) ids() []string {
	var out []string
	for id := range w.p.instances {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

var base = Config{Min: 0, Max: 3, Idle: 0, IdleTimeout: time.Minute, BuildsPerAgent: 2, JoinTimeout: 5 * time.Minute}

func TestDesiredAgents(t *testing.T) {
	tests := []struct {
		name    string
		cfg     func(Config) Config
		queued  int
		running int // on one joined agent
		want    int // instances after one step
	}{
		{"nothing to do", nil, 0, 0, 0},
		{"min kept", func(c Config) Config { c.Min = 1; return c }, 0, 0, 1},
		{"one build, one agent", nil, 1, 0, 1},
		{"two builds fit one agent", nil, 2, 0, 1},
		{"three need two", nil, 3, 0, 2},
		{"clamped to max", nil, 20, 0, 3},
		{"warm idle on top", func(c Config) Config { c.Idle = 1; return c }, 1, 0, 2},
		{"running builds count", nil, 2, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			if tt.cfg != nil {
				cfg = tt.cfg(cfg)
			}
			w := newWorld(t, cfg)
			if tt.running > 0 {
				w.p.instances["busy"] = Instance{ID: "busy", Phase: Running}
				a := w.f.join("busy", time.Time{})
				a.Builds, a.IdleSince = tt.running, time.Time{}
			}
			w.f.queued = tt.queued
			w.step(0)
			if got := len(w.p.instances); got != tt.want {
				t.Fatalf("%d instances, want %d (%v)", got, tt.want, w.ids())
			}
		})
	}
}

func TestScaleUpWaitsForBootingInstances(t *testing.T) {
	w := newWorld(t, base)
	w.f.queued = 2
	w.step(0)
	w.step(time.Minute) // still booting: counted, not made again
	if got := len(w.p.instances); got != 1 {
		t.Fatalf("%d instances after two steps, want 1", got)
	}
	if w.events[0] != events.PoolScaleUp || len(w.events) != 1 {
		t.Fatalf("decisions %v, want one scale-up", w.events)
	}
}

func TestUpCooldown(t *testing.T) {
	cfg := base
	cfg.UpCooldown = time.Minute
	w := newWorld(t, cfg)
	w.f.queued = 1
	w.step(0)
	w.f.queued = 6
	w.step(10 * time.Second)
	if got := len(w.p.instances); got != 1 {
		t.Fatalf("%d instances within the cooldown, want 1", got)
	}
	w.step(time.Minute)
	if got := len(w.p.instances); got != 3 {
		t.Fatalf("%d instances after the cooldown, want 3", got)
	}
}

func TestScaleInDrainsIdleThenDestroys(t *testing.T) {
	w := newWorld(t, base)
	w.f.queued = 4
	w.step(0)
	for _, id := range w.ids() {
		a := w.f.join(id, time.Time{})
		a.Builds = 2
	}
	w.f.queued = 0
	w.step(time.Second)
	if len(w.p.instances) != 2 {
		t.Fatal("busy agents must stay")
	}
	// One agent ends its builds; it idles past the timeout.
	first := w.f.agents["i1"]
	first.Builds, first.IdleSince = 0, w.now
	w.step(30 * time.Second)
	if first.Draining {
		t.Fatal("drained before the idle timeout")
	}
	w.step(31 * time.Second)
	if !first.Draining {
		t.Fatal("an agent idle past the timeout was not drained")
	}
	w.step(time.Second)
	if _, ok := w.p.instances["i1"]; ok {
		t.Fatal("a drained idle agent's instance was not destroyed")
	}
	if _, ok := w.p.instances["i2"]; !ok {
		t.Fatal("a busy agent's instance was destroyed")
	}
	want := []events.Type{events.PoolScaleUp, events.PoolScaleIn, events.PoolDestroy}
	if !slices.Equal(w.events, want) {
		t.Fatalf("decisions %v, want %v", w.events, want)
	}
}

func TestBusyAgentIsNeverDestroyedEvenWhenDrained(t *testing.T) {
	w := newWorld(t, base)
	w.p.instances["i1"] = Instance{ID: "i1", Phase: Running}
	a := w.f.join("i1", w.now)
	w.step(2 * time.Minute) // idle past the timeout: drained
	if !a.Draining {
		t.Fatal("not drained")
	}
	// A build reached it before the drain took hold.
	a.Builds, a.IdleSince = 1, time.Time{}
	for range 5 {
		w.step(time.Hour)
	}
	if _, ok := w.p.instances["i1"]; !ok {
		t.Fatal("a busy agent's instance was destroyed")
	}
	a.Builds, a.IdleSince = 0, w.now
	w.step(time.Second)
	if _, ok := w.p.instances["i1"]; ok {
		t.Fatal("destroyed only once idle: it is idle now")
	}
}

func TestWarmIdleAgentsAreKept(t *testing.T) {
	cfg := base
	cfg.Idle = 1
	w := newWorld(t, cfg)
	w.step(0)
	w.f.join("i1", w.now)
	for range 10 {
		w.step(10 * time.Minute)
	}
	if len(w.p.instances) != 1 {
		t.Fatalf("the warm idle agent went: %v", w.ids())
	}
}

func TestInstanceThatNeverJoinsIsDestroyed(t *testing.T) {
	w := newWorld(t, base)
	w.f.queued = 1
	w.step(0)
	w.step(4 * time.Minute)
	if len(w.p.destroyed) != 0 {
		t.Fatal("destroyed before the join timeout")
	}
	w.step(time.Minute)
	if len(w.p.destroyed) != 1 {
		t.Fatalf("an instance that never joined was kept: %v", w.ids())
	}
	// The build still waits: a new instance is asked for at once.
	if len(w.p.instances) != 1 || w.p.instances["i2"].ID == "" {
		t.Fatalf("no replacement: %v", w.ids())
	}
}

func TestGoneInstanceIsForgotten(t *testing.T) {
	w := newWorld(t, base)
	w.p.instances["i1"] = Instance{ID: "i1", Phase: Running}
	w.f.join("i1", w.now).Builds = 1
	w.step(0)
	delete(w.p.instances, "i1") // terminated outside the scaler
	delete(w.f.agents, "i1")
	w.step(time.Second)
	if _, ok := w.store.saved.Instances["i1"]; ok {
		t.Fatal("a gone instance is still tracked")
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	w := newWorld(t, base)
	w.p.instances["i1"] = Instance{ID: "i1", Phase: Running}
	a := w.f.join("i1", w.now)
	w.step(2 * time.Minute) // drained
	if !a.Draining {
		t.Fatal("not drained")
	}
	a.Builds, a.IdleSince = 1, time.Time{} // busy after all
	w.step(time.Second)
	// A new coordinator: the scaler loads what the old one saved.
	w.s = w.scaler(base)
	a.Builds, a.IdleSince = 0, w.now
	w.step(time.Second)
	if _, ok := w.p.instances["i1"]; ok {
		t.Fatal("the restarted scaler forgot it had drained i1")
	}
}

func TestConfigErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Min: -1, Max: 1, BuildsPerAgent: 1}, "--pool-min must be 0 or more"},
		{Config{Max: 0, BuildsPerAgent: 1}, "--pool-max must be at least 1"},
		{Config{Min: 3, Max: 2, BuildsPerAgent: 1}, "--pool-min (3) is above --pool-max (2)"},
		{Config{Max: 1, Idle: -1, BuildsPerAgent: 1}, "--pool-idle must be 0 or more"},
		{Config{Max: 1}, "a pool agent must fit at least one build: raise --pool-agent-cpus or --pool-agent-memory"},
	}
	for _, tt := range tests {
		if err := tt.cfg.Validate(); err == nil || err.Error() != tt.want {
			t.Errorf("%+v: %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func TestStaticPoolIsNeverScaled(t *testing.T) {
	w := newWorld(t, base)
	w.s = nil
	st := &memStore{}
	s, err := NewScaler(context.Background(), base, Static{Names: []string{"m1", "m2"}}, w.f, st)
	if err != nil {
		t.Fatal(err)
	}
	w.f.queued = 10
	w.f.join("m1", w.now)
	for range 3 {
		w.now = w.now.Add(time.Hour)
		if err := s.Step(context.Background(), w.now); err != nil {
			t.Fatal(err)
		}
	}
	got := s.Status()
	if len(got.Instances) != 2 || got.Instances["m1"].Agent != "agent-m1" || got.Instances["m2"].Agent != "" || len(got.Decisions) != 0 {
		t.Fatalf("status %+v", got)
	}
}

// An agent's container that exited after its drain is listed as stopping
// until removed: it is destroyed all the same, and asked again only after
// a while, with one decision.
func TestStoppedButListedInstanceIsDestroyedOnce(t *testing.T) {
	w := newWorld(t, base)
	w.p.instances["i1"] = Instance{ID: "i1", Phase: Running}
	w.f.join("i1", w.now)
	w.step(2 * time.Minute) // drained
	delete(w.f.agents, "i1")
	w.p.instances["i1"] = Instance{ID: "i1", Phase: Stopping}
	keep := w.p.instances["i1"]
	w.step(time.Second)
	if len(w.p.destroyed) != 1 {
		t.Fatalf("destroyed %v, want i1 once", w.p.destroyed)
	}
	w.p.instances["i1"] = keep // the provider has not removed it yet
	w.step(time.Second)
	if len(w.p.destroyed) != 1 {
		t.Fatalf("destroyed again at once: %v", w.p.destroyed)
	}
	w.p.instances["i1"] = keep
	w.step(destroyAgain)
	if len(w.p.destroyed) != 2 {
		t.Fatalf("not asked again after %s: %v", destroyAgain, w.p.destroyed)
	}
	want := []events.Type{events.PoolScaleIn, events.PoolDestroy}
	if !slices.Equal(w.events, want) {
		t.Fatalf("decisions %v, want %v", w.events, want)
	}
}

// A step of none (or below it) is the default step: Run does not panic on
// what a flag may give it.
func TestRunTakesTheDefaultStepForNone(t *testing.T) {
	w := newWorld(t, base)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, every := range []time.Duration{0, -time.Second} {
		w.s.Run(ctx, every) // a canceled ctx: one step, then it returns
	}
}
