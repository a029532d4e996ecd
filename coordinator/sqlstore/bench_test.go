package sqlstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
)

// modes are the two durability settings, benchmarked side by side.
var modes = []struct {
	name string
	o    Options
}{
	{"normal", Options{}},
	{"normal-nogroup", Options{direct: true}},
	{"durable", Options{Durable: true}},
	{"durable-nogroup", Options{Durable: true, direct: true}},
}

func benchStore(b *testing.B, o Options) *Store {
	s, err := OpenWith(dbPath(b), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// createQueued makes n queued builds, ids prefix0..prefix(n-1).
func createQueued(b *testing.B, s *Store, prefix string, n int) {
	b.Helper()
	ctx := context.Background()
	for i := range n {
		if err := s.CreateBuild(ctx, coordinator.Build{ID: fmt.Sprint(prefix, i), Repo: "r", Source: coordinator.Source{URL: "file:///r"}, Params: map[string]string{"A": "1"}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendEvent stores events in order on one running attempt
// (serial), and from parallel goroutines, each on its own build.
func BenchmarkAppendEvent(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name+"/serial", func(b *testing.B) {
			s := benchStore(b, m.o)
			running(b, s, "b")
			ctx := context.Background()
			e := ev("b", 1, 0)
			b.ResetTimer()
			for i := range b.N {
				e.Seq = int64(i + 1)
				if _, err := s.AppendEvent(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(m.name+"/parallel", func(b *testing.B) {
			s := benchStore(b, m.o)
			var next atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := fmt.Sprint("p", next.Add(1))
				b.StopTimer()
				running(b, s, id)
				b.StartTimer()
				ctx := context.Background()
				e := ev(id, 1, 0)
				for pb.Next() {
					e.Seq++
					if _, err := s.AppendEvent(ctx, e); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkAssign assigns queued builds, one Assign per op.
func BenchmarkAssign(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			s := benchStore(b, m.o)
			createQueued(b, s, "b", b.N)
			ctx := context.Background()
			lease := time.Now().Add(time.Minute)
			b.ResetTimer()
			for i := range b.N {
				if err := s.Assign(ctx, fmt.Sprint("b", i), 1, "agent", lease); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAssignFinish is the dispatch path of one build: Assign then
// Finish.
func BenchmarkAssignFinish(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			s := benchStore(b, m.o)
			createQueued(b, s, "b", b.N)
			ctx := context.Background()
			lease := time.Now().Add(time.Minute)
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprint("b", i)
				if err := s.Assign(ctx, id, 1, "agent", lease); err != nil {
					b.Fatal(err)
				}
				if err := s.Finish(ctx, id, 1, events.Success, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBuildLifecycle is everything the store does for one build that
// reports a few events: CreateBuild, Assign, 4 x (AppendEvent + LastSeq),
// LastSeq, Finish (what the coordinator does per build); serial, and from
// many goroutines. ns/op is the store's time per build: 1e9/ns builds/s.
func BenchmarkBuildLifecycle(b *testing.B) {
	full := func(ctx context.Context, s *Store, id string) error {
		if err := s.CreateBuild(ctx, coordinator.Build{ID: id, Repo: "r", Source: coordinator.Source{URL: "file:///r"}}); err != nil {
			return err
		}
		if err := s.Assign(ctx, id, 1, "agent", time.Now().Add(30*time.Second)); err != nil {
			return err
		}
		for seq := int64(1); seq <= 4; seq++ {
			if _, err := s.AppendEvent(ctx, ev(id, 1, seq)); err != nil {
				return err
			}
			if _, err := s.LastSeq(ctx, id, 1); err != nil {
				return err
			}
		}
		if _, err := s.LastSeq(ctx, id, 1); err != nil {
			return err
		}
		return s.Finish(ctx, id, 1, events.Success, "")
	}
	for _, m := range modes {
		b.Run(m.name+"/serial", func(b *testing.B) {
			s := benchStore(b, m.o)
			ctx := context.Background()
			for i := range b.N {
				if err := full(ctx, s, fmt.Sprint("b", i)); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, p := range []int{4, 32} {
			// p goroutines per CPU: p=32 is 64 callers here, as with many
			// agents reporting at once.
			b.Run(fmt.Sprintf("%s/parallel%d", m.name, p), func(b *testing.B) {
				s := benchStore(b, m.o)
				var next atomic.Int64
				b.SetParallelism(p)
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						if err := full(ctx, s, fmt.Sprint("b", next.Add(1))); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkQueued reads a queue of 20,000 builds, as the coordinator does
// when it starts.
func BenchmarkQueued(b *testing.B) {
	s := benchStore(b, Options{})
	createQueued(b, s, "q", 20000)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		q, err := s.Queued(ctx)
		if err != nil || len(q) != 20000 {
			b.Fatal(len(q), err)
		}
	}
}

// BenchmarkRunning reads the running builds among 20,000, as the lease
// sweeper does every tick (1,000 running).
func BenchmarkRunning(b *testing.B) {
	s := benchStore(b, Options{})
	createQueued(b, s, "q", 20000)
	ctx := context.Background()
	for i := range 1000 {
		if err := s.Assign(ctx, fmt.Sprint("q", i), 1, "a", time.Now().Add(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		r, err := s.Running(ctx)
		if err != nil || len(r) != 1000 {
			b.Fatal(len(r), err)
		}
	}
}

// BenchmarkLastSeq reads an attempt's mark.
func BenchmarkLastSeq(b *testing.B) {
	s := benchStore(b, Options{})
	running(b, s, "b")
	ctx := context.Background()
	for seq := int64(1); seq <= 100; seq++ {
		if _, err := s.AppendEvent(ctx, ev("b", 1, seq)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.LastSeq(ctx, "b", 1); err != nil {
			b.Fatal(err)
		}
	}
}
