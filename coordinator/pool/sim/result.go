package sim

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Result is what a simulated day cost and how long its builds waited.
type Result struct {
	Builds         int // builds in the trace, all done at the end
	BuildsPerAgent int
	// Span is the time instance-hours count over: the day, or up to the
	// last build's end if later.
	Span          time.Duration
	InstanceHours float64
	PeakInstances int
	// Queue wait: from a build's arrival to its dispatch to an agent.
	WaitP50, WaitP95, WaitMax time.Duration
	// Waited is how many builds waited at all.
	Waited int
	// The scaler's decisions, and the instances it created.
	ScaleUps, ScaleIns, Destroys, Created int
	// BusyDestroyed counts instances destroyed while their agent held a
	// build; the scaler must never do it (the builds were retried).
	BusyDestroyed int
	Fixed         Fixed
	// Ratio is InstanceHours over Fixed.InstanceHours.
	Ratio float64
}

// finish fills in the figures of a finished run.
func (r *Result) finish(w *world) {
	r.Span = w.clock.now.Sub(start)
	r.InstanceHours = w.provider.hours()
	r.BusyDestroyed = w.fleet.busyDestroyed
	var waits []time.Duration
	for _, run := range w.runs {
		wait := run.started.Sub(run.arrived)
		waits = append(waits, wait)
		if wait > 0 {
			r.Waited++
		}
	}
	slices.Sort(waits)
	r.WaitP50, r.WaitP95 = percentile(waits, 50), percentile(waits, 95)
	if len(waits) > 0 {
		r.WaitMax = waits[len(waits)-1]
	}
	r.Fixed = fixedPool(w.runs, r.BuildsPerAgent, r.Span)
	if r.Fixed.InstanceHours > 0 {
		r.Ratio = r.InstanceHours / r.Fixed.InstanceHours
	}
}

// percentile is the nearest-rank p-th percentile of sorted durations: the
// smallest that at least p% are at or below.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i, 1)-1]
}

// Print writes the result as a short table.
func (r Result) Print(w io.Writer) error {
	_, err := io.WriteString(w, r.String())
	return err
}

func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "builds           %d over %s, %d per agent\n", r.Builds, hours(r.Span), r.BuildsPerAgent)
	fmt.Fprintf(&b, "instance-hours   %.1f, %.0f%% of %.1f for a fixed pool of %d (peak: %d builds at once)\n",
		r.InstanceHours, 100*r.Ratio, r.Fixed.InstanceHours, r.Fixed.Instances, r.Fixed.PeakBuilds)
	fmt.Fprintf(&b, "queue wait       p50 %s, p95 %s, max %s; %d builds waited\n", r.WaitP50, r.WaitP95, r.WaitMax, r.Waited)
	fmt.Fprintf(&b, "scale events     %d up (%d instances), %d in, %d destroyed; at most %d instances\n",
		r.ScaleUps, r.Created, r.ScaleIns, r.Destroys, r.PeakInstances)
	if r.BusyDestroyed > 0 {
		fmt.Fprintf(&b, "SCALER BUG       %d instances destroyed under a build\n", r.BusyDestroyed)
	}
	return b.String()
}

// hours prints a span as "24h" or "25h30m".
func hours(d time.Duration) string {
	s := strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
