// Command gentrace writes the shipped trace, a working day of a team of
// about 40 engineers, to standard output. It is deterministic (a fixed
// seed); from coordinator/pool/sim:
//
//	go generate    (or: go run ./gentrace > testdata/day.csv)
//
// The model, made to be plausible and not tuned to any figure:
//   - pushes arrive as a Poisson process whose rate follows the day: next
//     to none at night, a ramp from 07:00, a morning plateau, a lunch dip,
//     an afternoon peak, a tail into the evening;
//   - some pushes come in bursts, more so in the afternoon: 2 to 5 builds
//     within a minute (a merged pull request building main and its
//     release branches, a monorepo push fanning out);
//   - three nightly builds, scheduled at 02:00, of the long kind;
//   - a build runs 1 to 4 jobs lasting 30 s to 15 min in all (log-normal,
//     median 3 min), split unevenly between its jobs.
package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"sort"
)

// seed makes the trace; change it and the trace is another day.
const seed = 40

// pushesPerHour is the push rate at hours of the day, linear in between.
var pushesPerHour = []struct{ hour, rate float64 }{
	{0, 0.3}, {6, 0.3}, {7, 2}, {8, 10}, {9, 24}, {10, 27}, {11, 25},
	{12, 10}, {12.5, 7}, {13, 12}, {14, 27}, {15, 32}, {16, 30},
	{17, 20}, {18, 8}, {19, 3}, {21, 1.5}, {24, 0.3},
}

func main() {
	if err := generate(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gentrace:", err)
		os.Exit(1)
	}
}

type build struct {
	at   int   // seconds from midnight
	jobs []int // seconds
}

func generate(out io.Writer) error {
	g := gen{rand.NewPCG(seed, seed)}
	var builds []build
	// Nightlies: scheduled together, started a few seconds apart.
	for i := range 3 {
		builds = append(builds, build{at: 2*3600 + g.intn(5) + i, jobs: g.jobs(3+g.intn(2), 420+g.intn(420))})
	}
	// Pushes: a Poisson process thinned from the top rate.
	top := 0.0
	for _, k := range pushesPerHour {
		top = math.Max(top, k.rate)
	}
	for h := g.exp() / top; h < 24; h += g.exp() / top {
		if g.float() >= rate(h)/top {
			continue
		}
		at := int(h * 3600)
		n := 1
		if g.float() < burstChance(h) {
			n = 2 + g.intn(4)
		}
		for range n {
			offset := 0
			if n > 1 {
				offset = g.intn(60)
			}
			builds = append(builds, build{at: min(at+offset, 24*3600-1), jobs: g.jobs(g.jobCount(), g.total())})
		}
	}
	sort.SliceStable(builds, func(i, j int) bool { return builds[i].at < builds[j].at })

	w := bufio.NewWriter(out)
	fmt.Fprintln(w, "# A working day of a team of about 40 engineers, made by gentrace (seed")
	fmt.Fprintf(w, "# %d): go generate in coordinator/pool/sim. Do not edit by hand.\n", seed)
	fmt.Fprintln(w, "arrival,jobs,durations")
	for _, b := range builds {
		fmt.Fprintf(w, "%02d:%02d:%02d,%d,", b.at/3600, b.at/60%60, b.at%60, len(b.jobs))
		for i, d := range b.jobs {
			if i > 0 {
				fmt.Fprint(w, ";")
			}
			fmt.Fprint(w, d)
		}
		fmt.Fprintln(w)
	}
	return w.Flush()
}

// rate is the push rate at hour h.
func rate(h float64) float64 {
	for i := 1; i < len(pushesPerHour); i++ {
		a, b := pushesPerHour[i-1], pushesPerHour[i]
		if h < b.hour {
			return a.rate + (b.rate-a.rate)*(h-a.hour)/(b.hour-a.hour)
		}
	}
	return pushesPerHour[len(pushesPerHour)-1].rate
}

// burstChance is the chance that a push comes with others: merges pile
// up in the afternoon.
func burstChance(h float64) float64 {
	if h >= 13.5 && h < 17.5 {
		return 0.2
	}
	return 0.1
}

// gen draws from a PCG source, whose output the Go project fixes, through
// helpers of its own: the trace does not move with math/rand's methods.
type gen struct{ src *rand.PCG }

// float is uniform in [0, 1).
func (g gen) float() float64 { return float64(g.src.Uint64()>>11) / (1 << 53) }

// intn is uniform in [0, n).
func (g gen) intn(n int) int { return int(g.float() * float64(n)) }

// exp is exponential with mean 1.
func (g gen) exp() float64 { return -math.Log(1 - g.float()) }

// normal is standard normal (Box-Muller).
func (g gen) normal() float64 {
	return math.Sqrt(-2*math.Log(1-g.float())) * math.Cos(2*math.Pi*g.float())
}

// jobCount: 1 to 4 jobs, fewer more often.
func (g gen) jobCount() int {
	switch u := g.float(); {
	case u < 0.35:
		return 1
	case u < 0.65:
		return 2
	case u < 0.85:
		return 3
	default:
		return 4
	}
}

// total is a build's jobs' time in seconds: log-normal, median 3 min,
// within 30 s and 15 min.
func (g gen) total() int {
	return int(math.Min(900, math.Max(30, 180*math.Exp(0.7*g.normal()))))
}

// jobs splits total seconds unevenly between n jobs of 5 s or more.
func (g gen) jobs(n, total int) []int {
	weights := make([]float64, n)
	sum := 0.0
	for i := range weights {
		weights[i] = 0.5 + g.float()
		sum += weights[i]
	}
	out := make([]int, n)
	left := total
	for i := range out {
		if i == n-1 {
			out[i] = left
			break
		}
		out[i] = max(5, int(float64(total)*weights[i]/sum))
		left -= out[i]
	}
	out[n-1] = max(5, out[n-1])
	return out
}
