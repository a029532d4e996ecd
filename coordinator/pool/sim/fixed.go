package sim

import (
	"cmp"
	"slices"
	"time"
)

// Fixed is the pool the scaler is weighed against: always on for the
// whole span, just big enough that every build starts on arrival.
type Fixed struct {
	// PeakBuilds is the most builds running at once if each started on
	// arrival.
	PeakBuilds    int
	Instances     int
	InstanceHours float64
}

func fixedPool(runs []*run, perAgent int, span time.Duration) Fixed {
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, r := range runs {
		edges = append(edges, edge{r.arrived, +1}, edge{r.arrived.Add(r.length), -1})
	}
	// A build that ends frees its room for one that starts that instant.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.delta, b.delta)
	})
	var f Fixed
	running := 0
	for _, e := range edges {
		running += e.delta
		f.PeakBuilds = max(f.PeakBuilds, running)
	}
	f.Instances = (f.PeakBuilds + perAgent - 1) / perAgent
	f.InstanceHours = float64(f.Instances) * span.Hours()
	return f
}
