package sim

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// oneBuild is a trace of one build of one 60 s job arriving at at.
func oneBuild(at time.Duration) Trace {
	return Trace{Name: "one", Builds: []Build{{Line: 2, Arrival: at, Jobs: []time.Duration{time.Minute}}}}
}

// small is the world of the hand-worked tests: pool min 0, steps every
// 10 s, boot 90 s, builds' overhead 5 s, an hour's span.
// small is an hour with a 10-minute idle timeout: the figures below are
// worked out by hand for it.
func small(idle int) Options {
	o := DefaultOptions()
	o.Idle, o.Span, o.IdleTimeout = idle, time.Hour, 10*time.Minute
	return o
}

// One build on an empty pool that keeps nothing warm: the scaler sees it
// queued at its next step and makes an instance, which boots for 90 s.
// The build runs 65 s; its agent idles 10 min, is drained at the next
// step and destroyed at the one after.
func TestOneBuildColdPool(t *testing.T) {
	for _, c := range []struct {
		at, wait time.Duration
	}{
		{0, 90 * time.Second},                 // arrives with the step at 0: created at 0, joins at 90
		{time.Second, 99 * time.Second},       // created at the step at 10, joins at 100
		{10 * time.Second, 90 * time.Second},  // with the step at 10
		{11 * time.Second, 99 * time.Second},  // step at 20, joins at 110
		{125 * time.Second, 95 * time.Second}, // step at 130, joins at 220
	} {
		r, err := Run(oneBuild(c.at), small(0))
		if err != nil {
			t.Fatal(err)
		}
		if r.WaitP50 != c.wait || r.WaitP95 != c.wait || r.WaitMax != c.wait || r.Waited != 1 {
			t.Errorf("arriving at %s: waits %s/%s/%s (%d waited), want %s", c.at, r.WaitP50, r.WaitP95, r.WaitMax, r.Waited, c.wait)
		}
		// Created at step s, the build ends at s+90+65; drained at the
		// first step 600 s after that (s+760), destroyed at the next.
		if want := (770 * time.Second).Hours(); !near(r.InstanceHours, want) {
			t.Errorf("arriving at %s: %.4f instance-hours, want %.4f", c.at, r.InstanceHours, want)
		}
		if r.ScaleUps != 1 || r.Created != 1 || r.ScaleIns != 1 || r.Destroys != 1 || r.PeakInstances != 1 {
			t.Errorf("arriving at %s: %+v, want one instance made, drained, destroyed", c.at, r)
		}
		// The fixed pool: one instance for the hour.
		if r.Fixed != (Fixed{PeakBuilds: 1, Instances: 1, InstanceHours: 1}) || r.Span != time.Hour || !near(r.Ratio, 770.0/3600) {
			t.Errorf("arriving at %s: fixed %+v over %s, ratio %.3f", c.at, r.Fixed, r.Span, r.Ratio)
		}
	}
}

// With one agent kept warm the build starts on arrival, and the scaler at
// once makes another warm agent; the first, now idle longest, goes once
// it has idled 10 min.
func TestOneBuildWarmPool(t *testing.T) {
	r, err := Run(oneBuild(30*time.Minute), small(1))
	if err != nil {
		t.Fatal(err)
	}
	if r.WaitMax != 0 || r.Waited != 0 {
		t.Errorf("waited %s", r.WaitMax)
	}
	// i-001: made at 0, runs the build from 1800 to 1865, drained at the
	// step at 2470, destroyed at 2480. i-002: made at 1800, warm to the
	// end of the hour.
	if want := (2480*time.Second + 1800*time.Second).Hours(); !near(r.InstanceHours, want) {
		t.Errorf("%.4f instance-hours, want %.4f", r.InstanceHours, want)
	}
	if r.ScaleUps != 2 || r.ScaleIns != 1 || r.Destroys != 1 || r.PeakInstances != 2 {
		t.Errorf("%+v: want 2 scale-ups, 1 scale-in, 1 destroyed, 2 at most", r)
	}
}

// A build that arrives while the only agent is full waits for a slot or
// for a new agent, whichever comes first.
func TestWaitsForSlot(t *testing.T) {
	tr := Trace{Builds: []Build{
		{Arrival: 0, Jobs: []time.Duration{20 * time.Minute}},
		{Arrival: 0, Jobs: []time.Duration{55 * time.Second}}, // ends at 150
		{Arrival: 100 * time.Second, Jobs: []time.Duration{time.Minute}},
	}}
	o := small(0)
	o.Max = 1
	r, err := Run(tr, o)
	if err != nil {
		t.Fatal(err)
	}
	// One instance (max 1) joins at 90 and takes the first two; the third
	// takes the second's slot at 150: waits of 90, 90 and 50 s.
	if r.WaitMax != 90*time.Second || r.WaitP50 != 90*time.Second || r.Waited != 3 {
		t.Errorf("waits p50 %s, max %s, %d waited; want 90 s, 90 s, 3", r.WaitP50, r.WaitMax, r.Waited)
	}
	// Had each started on arrival, the second would have ended at 60.
	if r.Fixed.PeakBuilds != 2 || r.Fixed.Instances != 1 {
		t.Errorf("fixed pool %+v, want 2 builds at once on 1 instance", r.Fixed)
	}
}

// A build lasts its jobs one after the other, plus the overhead; the
// fixed pool counts builds that overlap, a build ending as another starts
// not overlapping it.
func TestFixedPool(t *testing.T) {
	tr := Trace{Builds: []Build{
		{Arrival: 0, Jobs: []time.Duration{30 * time.Second, 25 * time.Second}}, // 0 to 60
		{Arrival: 60 * time.Second, Jobs: []time.Duration{55 * time.Second}},    // 60 to 120
		{Arrival: 61 * time.Second, Jobs: []time.Duration{time.Second}},         // 61 to 67
		{Arrival: 62 * time.Second, Jobs: []time.Duration{time.Second}},         // 62 to 68
	}}
	for _, c := range []struct {
		pause         bool
		instances     int
		instanceHours float64
	}{{true, 2, 2}, {false, 3, 3}} {
		o := small(0)
		o.Pause = c.pause
		r, err := Run(tr, o)
		if err != nil {
			t.Fatal(err)
		}
		if want := (Fixed{PeakBuilds: 3, Instances: c.instances, InstanceHours: c.instanceHours}); r.Fixed != want {
			t.Errorf("pause %v: fixed %+v, want %+v", c.pause, r.Fixed, want)
		}
	}
}

// The scaler never destroys an instance whose agent holds a build, on the
// shipped day and on days made to tempt it: builds far longer than the
// idle timeout, a pool that cannot grow, no warm agent.
func TestBusyAgentNeverDestroyed(t *testing.T) {
	long := Trace{}
	for i := range 12 {
		long.Builds = append(long.Builds, Build{Arrival: time.Duration(i) * 7 * time.Minute, Jobs: []time.Duration{3 * time.Hour, time.Duration(i+1) * time.Minute}})
	}
	for _, tr := range []Trace{day(t), long} {
		for _, o := range []Options{
			DefaultOptions(),
			func() Options { o := DefaultOptions(); o.Idle, o.IdleTimeout = 0, time.Minute; return o }(),
			func() Options { o := DefaultOptions(); o.Max, o.Idle = 2, 0; return o }(),
			func() Options { o := DefaultOptions(); o.Pause, o.Boot = false, 0; return o }(),
		} {
			r, err := Run(tr, o)
			if err != nil {
				t.Fatal(err)
			}
			if r.BusyDestroyed != 0 {
				t.Errorf("%d instances destroyed under a build (%+v)", r.BusyDestroyed, o)
			}
		}
	}
}

// Without pausing a build needs both its CPUs: twice the agents.
func TestPausingSavesInstanceHours(t *testing.T) {
	o := DefaultOptions()
	with, err := Run(day(t), o)
	if err != nil {
		t.Fatal(err)
	}
	o.Pause = false
	without, err := Run(day(t), o)
	if err != nil {
		t.Fatal(err)
	}
	if without.InstanceHours <= with.InstanceHours {
		t.Errorf("%.1f instance-hours without pausing, %.1f with", without.InstanceHours, with.InstanceHours)
	}
	if with.BuildsPerAgent != 2 || without.BuildsPerAgent != 1 {
		t.Errorf("builds per agent %d with pausing, %d without; want 2, 1", with.BuildsPerAgent, without.BuildsPerAgent)
	}
}

// Every build of the day is done, and a run gives the same figures every
// time (the scaler walks maps: nothing may depend on their order).
func TestDayIsRepeatable(t *testing.T) {
	first, err := Run(day(t), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if first.Builds != len(day(t).Builds) || first.Span != 24*time.Hour {
		t.Errorf("%d builds over %s", first.Builds, first.Span)
	}
	for range 5 {
		again, err := Run(day(t), DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again, first) {
			t.Fatalf("another run gave\n%s\nthe first\n%s", again, first)
		}
	}
}

func TestOptionsErrors(t *testing.T) {
	for _, c := range []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.Boot = -time.Second }, "--boot must be 0 or more"},
		{func(o *Options) { o.AgentCPUs = 0 }, "--agent-cpus must be at least 1"},
		{func(o *Options) { o.AgentCPUs, o.Pause = 1, false }, "--agent-cpus 1 fits no build without pausing: a build needs 2 CPUs, its script's and its job's"},
		{func(o *Options) { o.Boot = 5 * time.Minute }, "--boot 5m0s is not below the join timeout 5m0s: every instance would be destroyed before its agent joins"},
		{func(o *Options) { o.Step = 0 }, "the scaler's step must be positive"},
		{func(o *Options) { o.Boot, o.JoinTimeout = 6*time.Minute, 0 }, "--boot 6m0s is not below the join timeout 5m0s: every instance would be destroyed before its agent joins"},
		{func(o *Options) { o.Min, o.Max = 3, 2 }, "--pool-min (3) is above --pool-max (2)"},
	} {
		o := DefaultOptions()
		c.change(&o)
		if _, err := Run(oneBuild(0), o); err == nil || err.Error() != c.want {
			t.Errorf("got %v, want %s", err, c.want)
		}
	}
}

func TestResultString(t *testing.T) {
	r, err := Run(oneBuild(0), small(0))
	if err != nil {
		t.Fatal(err)
	}
	want := `builds           1 over 1h, 2 per agent
instance-hours   0.2, 21% of 1.0 for a fixed pool of 1 (peak: 1 builds at once)
queue wait       p50 1m30s, p95 1m30s, max 1m30s; 1 builds waited
scale events     1 up (1 instances), 1 in, 1 destroyed; at most 1 instances
`
	if got := r.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var b strings.Builder
	if err := r.Print(&b); err != nil || b.String() != want {
		t.Errorf("Print wrote %q, %v", b.String(), err)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 20; i++ {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	for _, c := range []struct {
		in   []time.Duration
		p    int
		want time.Duration
	}{
		{nil, 95, 0},
		{ds[:1], 50, time.Second},
		{ds, 50, 10 * time.Second},
		{ds, 95, 19 * time.Second},
		{ds, 100, 20 * time.Second},
		{ds[:10], 95, 10 * time.Second},
	} {
		if got := percentile(c.in, c.p); got != c.want {
			t.Errorf("p%d of %d: got %s, want %s", c.p, len(c.in), got, c.want)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
