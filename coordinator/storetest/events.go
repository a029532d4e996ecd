package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
)

func appendEventOutOfOrder(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	running(t, s, "b")
	steps := []struct {
		seq    int64
		stored bool
		last   int64
	}{
		{3, true, 0},
		{1, true, 1},
		{1, false, 1}, // duplicate
		{2, true, 3},  // fills the gap: 1..3
		{2, false, 3},
		{6, true, 3},
		{5, true, 3},
		{7, true, 3},
		{4, true, 7}, // 1..7
		{9, true, 7},
		{3, false, 7},
		{8, true, 9},
	}
	for _, st := range steps {
		stored, err := s.AppendEvent(ctx, ev("b", 1, st.seq))
		must(t, err)
		last, err := s.LastSeq(ctx, "b", 1)
		must(t, err)
		if stored != st.stored || last != st.last {
			t.Errorf("after seq %d: stored %v, LastSeq %d; want %v, %d", st.seq, stored, last, st.stored, st.last)
		}
	}
	es, err := s.Events(ctx, "b")
	must(t, err)
	for i, e := range es {
		if e.Seq != int64(i+1) || e.Attempt != 1 || e.BuildID != "b" || e.Event.Job != fmt.Sprint("job-", i+1) {
			t.Errorf("event %d: %+v", i, e)
		}
	}
	if len(es) != 9 {
		t.Errorf("%d events stored, want 9", len(es))
	}
}

// lastSeqRandom checks the high-water mark against a plain count, for
// random orders with duplicates, over several attempts.
func lastSeqRandom(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		id := fmt.Sprint("b", round)
		running(t, s, id)
		n := 1 + r.IntN(40)
		var seqs []int64
		for seq := range n {
			for range 1 + r.IntN(3) {
				seqs = append(seqs, int64(seq+1))
			}
		}
		// Some are never sent: the mark stops before the first of them.
		r.Shuffle(len(seqs), func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
		seqs = seqs[:len(seqs)*(3+r.IntN(2))/4]
		have := map[int64]bool{}
		for _, seq := range seqs {
			stored, err := s.AppendEvent(ctx, ev(id, 1, seq))
			must(t, err)
			if stored == have[seq] {
				t.Fatalf("%s seq %d: stored %v, stored before %v", id, seq, stored, have[seq])
			}
			have[seq] = true
			want := int64(0)
			for have[want+1] {
				want++
			}
			if last, err := s.LastSeq(ctx, id, 1); err != nil || last != want {
				t.Fatalf("%s after %d: LastSeq %d, %v; want %d", id, seq, last, err, want)
			}
		}
	}
}

func appendEventFencing(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	must(t, s.CreateBuild(ctx, build("q", 0)))
	running(t, s, "b")
	if _, err := s.AppendEvent(ctx, ev("q", 1, 1)); !errors.Is(err, coordinator.ErrStale) {
		t.Errorf("an event of a queued build: %v", err)
	}
	for _, c := range []struct {
		name string
		e    coordinator.StoredEvent
		err  error
		says string
	}{
		{"seq 0", ev("b", 1, 0), nil, "count from 1"},
		{"attempt 0", ev("b", 0, 1), nil, "count from 1"},
		{"a later attempt", ev("b", 2, 1), coordinator.ErrStale, "running at attempt 1"},
		{"the current attempt", ev("b", 1, 1), nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.AppendEvent(ctx, c.e)
			if c.err != nil && !errors.Is(err, c.err) || c.says != "" && (err == nil || !strings.Contains(err.Error(), c.says)) || c.says == "" && err != nil {
				t.Errorf("AppendEvent: %v, want %v saying %q", err, c.err, c.says)
			}
		})
	}
	// The attempt is lost: its late events are refused, before and after
	// the next attempt starts, and after that one ends.
	must(t, s.Requeue(ctx, "b", 1, coordinator.ReasonAgentLost))
	if _, err := s.AppendEvent(ctx, ev("b", 1, 2)); !errors.Is(err, coordinator.ErrStale) {
		t.Errorf("an event of a requeued attempt: %v", err)
	}
	must(t, s.Assign(ctx, "b", 2, "ag2", time.Now().Add(time.Hour)))
	if _, err := s.AppendEvent(ctx, ev("b", 1, 2)); !errors.Is(err, coordinator.ErrStale) {
		t.Errorf("an event of an old attempt: %v", err)
	}
	if _, err := s.AppendEvent(ctx, ev("b", 1, 1)); !errors.Is(err, coordinator.ErrStale) {
		t.Errorf("a duplicate of an old attempt: %v", err)
	}
	for seq := int64(1); seq <= 3; seq++ {
		_, err := s.AppendEvent(ctx, ev("b", 2, seq))
		must(t, err)
	}
	must(t, s.Finish(ctx, "b", 2, events.Success, ""))
	if _, err := s.AppendEvent(ctx, ev("b", 2, 4)); !errors.Is(err, coordinator.ErrStale) {
		t.Errorf("an event after the attempt ended: %v", err)
	}
	// Each attempt has its own numbers and mark.
	for attempt, want := range map[int]int64{1: 1, 2: 3, 3: 0} {
		if last, err := s.LastSeq(ctx, "b", attempt); err != nil || last != want {
			t.Errorf("LastSeq of attempt %d = %d, %v; want %d", attempt, last, err, want)
		}
	}
	es, err := s.Events(ctx, "b")
	must(t, err)
	var got []string
	for _, e := range es {
		got = append(got, fmt.Sprintf("%d.%d", e.Attempt, e.Seq))
	}
	if want := []string{"1.1", "2.1", "2.2", "2.3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Events = %v, want %v", got, want)
	}
}

func eventRoundTrip(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	running(t, s, "b")
	e := events.Event{
		Type: events.CommandEnd, Time: t0, Build: "b", Job: "test", Command: "2",
		Stdout: "/logs/out", Stderr: "/logs/err", Exit: events.ExitCode(3), Status: events.Failure,
		Step: "2", Done: true, Message: "exit 3 \"quoted\"\n", Duration: 1500 * time.Millisecond,
	}
	_, err := s.AppendEvent(ctx, coordinator.StoredEvent{BuildID: "b", Attempt: 1, Seq: 1, Event: e})
	must(t, err)
	es, err := s.Events(ctx, "b")
	must(t, err)
	if len(es) != 1 || !reflect.DeepEqual(es[0].Event, e) {
		t.Errorf("Events = %+v, want %+v", es, e)
	}
	must(t, s.CreateBuild(ctx, build("empty", 0)))
	if es, err := s.Events(ctx, "empty"); err != nil || len(es) != 0 {
		t.Errorf("Events of a build without any = %v, %v", es, err)
	}
	if last, err := s.LastSeq(ctx, "empty", 1); err != nil || last != 0 {
		t.Errorf("LastSeq of a build without events = %d, %v", last, err)
	}
}

// concurrentAppendEvent sends every seq of a build from many goroutines
// at once, each in its own order: each is stored once, and the mark ends at
// the last.
func concurrentAppendEvent(t *testing.T, open Opener) {
	racingAppends(t, []coordinator.Store{open(t, nil)})
}

// racingAppends is concurrentAppendEvent with the workers spread over
// stores that share their data.
func racingAppends(t *testing.T, stores []coordinator.Store) {
	s := stores[0]
	ctx := context.Background()
	const builds, workers, n = 3, 16, 60
	for b := range builds {
		running(t, s, fmt.Sprint("b", b))
	}
	var storedCount [builds]atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			type job struct {
				b   int
				seq int64
			}
			var jobs []job
			for b := range builds {
				for seq := range n {
					jobs = append(jobs, job{b, int64(seq + 1)})
				}
			}
			r.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
			s := stores[w%len(stores)]
			for _, j := range jobs {
				stored, err := s.AppendEvent(ctx, ev(fmt.Sprint("b", j.b), 1, j.seq))
				if err != nil {
					errs <- err
					return
				}
				if stored {
					storedCount[j.b].Add(1)
				}
				if _, err := s.LastSeq(ctx, fmt.Sprint("b", j.b), 1); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for b := range builds {
		id := fmt.Sprint("b", b)
		if got := storedCount[b].Load(); got != n {
			t.Errorf("%s: %d appends reported stored, want %d", id, got, n)
		}
		last, err := s.LastSeq(ctx, id, 1)
		must(t, err)
		es, err := s.Events(ctx, id)
		must(t, err)
		if last != n || len(es) != n {
			t.Errorf("%s: LastSeq %d, %d events; want %d", id, last, len(es), n)
		}
	}
}

// concurrentAssign races agents for one build: exactly one wins.
func concurrentAssign(t *testing.T, open Opener) {
	racingAssigns(t, []coordinator.Store{open(t, nil)})
}

// racingAssigns is concurrentAssign with the agents spread over stores
// that share their data.
func racingAssigns(t *testing.T, stores []coordinator.Store) {
	s := stores[0]
	ctx := context.Background()
	must(t, s.CreateBuild(ctx, build("b", 0)))
	const n = 20
	var won, stale atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			err := stores[i%len(stores)].Assign(ctx, "b", 1, fmt.Sprint("agent", i), time.Now().Add(time.Minute))
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, coordinator.ErrStale):
				stale.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 || stale.Load() != n-1 {
		t.Errorf("%d assigns won, %d were stale; want 1 and %d", won.Load(), stale.Load(), n-1)
	}
}

// concurrentUse runs whole build lifecycles beside readers.
func concurrentUse(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	const workers, per = 6, 12
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Queued(ctx); err != nil {
					t.Error(err)
				}
				if _, err := s.ListBuilds(ctx, coordinator.BuildFilter{Limit: 10}); err != nil {
					t.Error(err)
				}
				if _, err := s.Running(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := lifecycle(ctx, s, id, 3); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	bs, err := s.ListBuilds(ctx, coordinator.BuildFilter{State: coordinator.Ended})
	must(t, err)
	if len(bs) != workers*per {
		t.Errorf("%d builds ended, want %d", len(bs), workers*per)
	}
}

// lifecycle creates, assigns, reports events for and finishes one build.
func lifecycle(ctx context.Context, s coordinator.Store, id string, nEvents int) error {
	if err := s.CreateBuild(ctx, coordinator.Build{ID: id, Repo: "r", Source: coordinator.Source{URL: "file:///r"}}); err != nil {
		return err
	}
	if err := s.Assign(ctx, id, 1, "agent", time.Now().Add(30*time.Second)); err != nil {
		return err
	}
	for seq := int64(1); seq <= int64(nEvents); seq++ {
		if _, err := s.AppendEvent(ctx, ev(id, 1, seq)); err != nil {
			return err
		}
	}
	return s.Finish(ctx, id, 1, events.Success, "")
}
