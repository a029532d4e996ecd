package bench

import (
	"os"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/pool/sim"
)

const (
	// poolTrace is the shipped day (coordinator/pool/sim/gentrace).
	poolTrace      = "../coordinator/pool/sim/testdata/day.csv"
	poolMaxRatio   = 0.55
	poolMaxP95Wait = 10 * time.Second
)

// BenchmarkPoolSimulation replays the shipped day of build arrivals
// through the real scaler (sim.Run: simulated time, instances that boot
// in 90 s) with pausing and a warm pool of 1, the flags' defaults: its
// instance-hours against those of a fixed pool sized for the day's peak,
// and its p95 queue wait. The same day without pausing is shown beside
// it, weighed against its own fixed pool (twice the agents: a build
// needs 2 CPUs).
func BenchmarkPoolSimulation(b *testing.B) {
	f, err := os.Open(poolTrace)
	if err != nil {
		b.Fatal(err)
	}
	trace, err := sim.ParseTrace(f, "day.csv")
	f.Close()
	if err != nil {
		b.Fatal(err)
	}
	withOpts, withoutOpts := sim.DefaultOptions(), sim.DefaultOptions()
	withoutOpts.Pause = false
	var with, without sim.Result
	for b.Loop() {
		if with, err = sim.Run(trace, withOpts); err != nil {
			b.Fatal(err)
		}
		if without, err = sim.Run(trace, withoutOpts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(with.InstanceHours, "instance-h")
	b.ReportMetric(with.Ratio, "ih-ratio")
	b.ReportMetric(with.WaitP95.Seconds(), "p95-wait-s")
	b.ReportMetric(without.Ratio, "no-pause-ih-ratio")
	b.ReportMetric(without.WaitP95.Seconds(), "no-pause-p95-wait-s")
	verdict := verdictAtMost(with.Ratio, poolMaxRatio)
	b.Logf("pool simulation, pausing, warm pool of 1: %.1f instance-hours, %.1f%% of %.0f for a fixed pool of %d for the peak (at most %.0f%%) %s; %d builds, %d scale-ups, %d scale-ins, at most %d instances",
		with.InstanceHours, 100*with.Ratio, with.Fixed.InstanceHours, with.Fixed.Instances, 100*poolMaxRatio, verdict, with.Builds, with.ScaleUps, with.ScaleIns, with.PeakInstances)
	verdict = verdictAtMost(with.WaitP95, poolMaxP95Wait)
	b.Logf("pool simulation, pausing, warm pool of 1: queue wait p95 %s (at most %s) %s; p50 %s, max %s, %d of %d builds waited",
		with.WaitP95, poolMaxP95Wait, verdict, with.WaitP50, with.WaitMax, with.Waited, with.Builds)
	b.Logf("pool simulation without pausing, for comparison: %.1f instance-hours (%.0f%% more than with pausing), %.1f%% of %.0f for a fixed pool of %d; queue wait p95 %s, p50 %s, max %s; %d scale-ups",
		without.InstanceHours, 100*(without.InstanceHours/with.InstanceHours-1), 100*without.Ratio, without.Fixed.InstanceHours, without.Fixed.Instances, without.WaitP95, without.WaitP50, without.WaitMax, without.ScaleUps)
}
