package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// hold runs a change that blocks the writer until release is closed, so that
// the changes made meanwhile wait in the queue and run as one batch. It
// returns once the change is running.
func hold(t *testing.T, s *Store) (release func(), wait func()) {
	t.Helper()
	started, gate := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.write(context.Background(), func(wconn) error {
			close(started)
			<-gate
			return nil
		})
	}()
	<-started
	return func() { close(gate) }, func() {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// waitQueued waits until n changes wait behind the leader.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	wait.For(t, fmt.Sprintf("%d changes to queue behind the leader", n), func() bool {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		return len(s.queue)-1 >= n // less the leader
	})
}

// TestBatchOutcomesAreEach: in one batch, a refusal, a duplicate id, a
// canceled caller and a failure that spoils the transaction each stay with
// their caller; the other changes apply.
func TestBatchOutcomesAreEach(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	must(t, s.CreateBuild(ctx, build("dup", 0)))
	must(t, s.CreateBuild(ctx, build("run", 0)))
	release, wait := hold(t, s)

	canceled, cancel := context.WithCancel(ctx)
	var (
		mu   sync.Mutex
		outs = map[string]error{}
		wg   sync.WaitGroup
	)
	do := func(name string, f func() error) {
		wg.Go(func() {
			err := f()
			mu.Lock()
			outs[name] = err
			mu.Unlock()
		})
	}
	do("create a", func() error { return s.CreateBuild(ctx, build("a", 1)) })
	do("create dup", func() error { return s.CreateBuild(ctx, build("dup", 2)) })
	do("assign run", func() error { return s.Assign(ctx, "run", 1, "ag", time.Now().Add(time.Minute)) })
	do("stale assign", func() error { return s.Assign(ctx, "dup", 5, "ag", time.Now()) })
	do("canceled create", func() error { return s.CreateBuild(canceled, build("never", 3)) })
	do("agent", func() error { return s.SaveAgent(ctx, coordinator.Agent{ID: "ag", Name: "n"}) })
	waitQueued(t, s, 6)
	cancel()
	do("spoiler", func() error {
		return s.write(ctx, func(w wconn) error {
			// A change that fails in a way that may have spoiled the
			// transaction: the batch is run again one by one.
			if w.tx != nil {
				return errors.New("spoiled")
			}
			return errors.New("alone too")
		})
	})
	do("create b", func() error { return s.CreateBuild(ctx, build("b", 4)) })
	waitQueued(t, s, 8)
	release()
	wait()
	wg.Wait()

	for name, check := range map[string]func(error) bool{
		"create a":        func(err error) bool { return err == nil },
		"create b":        func(err error) bool { return err == nil },
		"assign run":      func(err error) bool { return err == nil },
		"agent":           func(err error) bool { return err == nil },
		"create dup":      func(err error) bool { return err != nil && strings.Contains(err.Error(), "exists already") },
		"stale assign":    func(err error) bool { return errors.Is(err, coordinator.ErrStale) },
		"canceled create": func(err error) bool { return errors.Is(err, context.Canceled) },
		"spoiler":         func(err error) bool { return err != nil && err.Error() == "alone too" },
	} {
		if !check(outs[name]) {
			t.Errorf("%s: %v", name, outs[name])
		}
	}
	for _, id := range []string{"a", "b"} {
		get(t, s, id)
	}
	if b := get(t, s, "run"); b.State != coordinator.Running {
		t.Errorf("run is %s", b.State)
	}
	if b := get(t, s, "dup"); !b.Created.Equal(t0) {
		t.Errorf("the duplicate create changed the build: %+v", b)
	}
	if _, err := s.GetBuild(ctx, "never"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("the canceled create applied: %v", err)
	}
	if _, err := s.GetAgent(ctx, "ag"); err != nil {
		t.Error(err)
	}
}

// TestBatchKeepsOrder: the changes that wait run in one transaction in the
// order they came, each seeing the ones before it.
func TestBatchKeepsOrder(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	must(t, s.CreateBuild(ctx, build("b", 0)))
	must(t, s.Assign(ctx, "b", 1, "ag", time.Now().Add(time.Minute)))
	release, wait := hold(t, s)
	errs := make(chan error, 3)
	// In order, each needs the one before: the events, then the end.
	go func() { _, err := s.AppendEvent(ctx, ev("b", 1, 1)); errs <- err }()
	waitQueued(t, s, 1)
	go func() { _, err := s.AppendEvent(ctx, ev("b", 1, 2)); errs <- err }()
	waitQueued(t, s, 2)
	go func() { errs <- s.Finish(ctx, "b", 1, events.Success, "") }()
	waitQueued(t, s, 3)
	s.wmu.Lock()
	if len(s.queue) != 4 {
		t.Errorf("%d changes in the queue, want the leader and 3", len(s.queue))
	}
	s.wmu.Unlock()
	release()
	wait()
	for range 3 {
		must(t, <-errs)
	}
	if last, err := s.LastSeq(ctx, "b", 1); err != nil || last != 2 {
		t.Errorf("LastSeq = %d, %v", last, err)
	}
	if b := get(t, s, "b"); b.State != coordinator.Ended {
		t.Errorf("build is %s", b.State)
	}
}

func TestClose(t *testing.T) {
	s, err := Open(dbPath(t))
	must(t, err)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := 0; ; j++ {
				err := s.CreateBuild(ctx, build(fmt.Sprint(i, "-", j), j))
				if errors.Is(err, errClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	must(t, s.Close())
	wg.Wait()
	must(t, s.Close()) // again: nothing
	if err := s.Renew(ctx, "x", 1, time.Now()); !errors.Is(err, errClosed) {
		t.Errorf("a change after Close: %v", err)
	}
}
