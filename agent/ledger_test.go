package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/wait"
)

// patience bounds every wait of these tests; nothing is expected to take
// more than a few milliseconds of it.
const patience = 10 * time.Second

const gb = 1 << 30

func cpus(n int64) Resources { return Resources{MilliCPUs: n * 1000} }

// acquireAsync starts an Acquire and returns where its answer will arrive.
func acquireAsync(ctx context.Context, l *Ledger, need Resources) <-chan error {
	done := make(chan error, 1)
	go func() { done <- l.Acquire(ctx, need) }()
	return done
}

// waitFor polls cond (read under the ledger's lock or any other) until it
// holds. It only synchronises with goroutines: correctness never depends on
// how long it waits.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.Within(t, patience, what, cond)
}

// waitQueued waits until n requests wait in l's queue.
func waitQueued(t *testing.T, l *Ledger, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d requests are queued", n), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.waiters) == n
	})
}

func granted(t *testing.T, what string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(patience):
		t.Fatalf("%s: not granted", what)
	}
}

// notGranted checks that done has no answer yet. Only call it when nothing
// could have granted the request: then it is not a race.
func notGranted(t *testing.T, what string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s: answered (%v) while it could not fit", what, err)
	default:
	}
}

func usedIs(t *testing.T, l *Ledger, want Resources) {
	t.Helper()
	if got := l.Used(); got != want {
		t.Fatalf("used %+v, want %+v", got, want)
	}
}

func TestLedgerAcquireFits(t *testing.T) {
	l := NewLedger(Resources{4000, 8 * gb})
	if l.Total() != (Resources{4000, 8 * gb}) {
		t.Fatalf("total %+v", l.Total())
	}
	ctx := context.Background()
	if err := l.Acquire(ctx, Resources{1500, 2 * gb}); err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(ctx, Resources{2500, 6 * gb}); err != nil { // exactly the rest
		t.Fatal(err)
	}
	usedIs(t, l, Resources{4000, 8 * gb})
	l.Release(Resources{1500, 2 * gb})
	usedIs(t, l, Resources{2500, 6 * gb})
}

func TestLedgerAcquireBlocksUntilRelease(t *testing.T) {
	for _, tt := range []struct {
		name       string
		held, need Resources
	}{
		{"CPU short", Resources{3000, 1 * gb}, Resources{2000, 1 * gb}},
		{"memory short", Resources{1000, 7 * gb}, Resources{1000, 2 * gb}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLedger(Resources{4000, 8 * gb})
			if err := l.Acquire(context.Background(), tt.held); err != nil {
				t.Fatal(err)
			}
			done := acquireAsync(context.Background(), l, tt.need)
			waitQueued(t, l, 1)
			notGranted(t, "request", done)
			usedIs(t, l, tt.held)
			l.Release(tt.held)
			granted(t, "request after release", done)
			usedIs(t, l, tt.need)
		})
	}
}

func TestLedgerIsFirstComeFirstServed(t *testing.T) {
	l := NewLedger(cpus(4))
	ctx := context.Background()
	if err := l.Acquire(ctx, cpus(3)); err != nil {
		t.Fatal(err)
	}
	big := acquireAsync(ctx, l, cpus(4))
	waitQueued(t, l, 1)
	// One CPU is free, but the big request came first: the small one queues.
	small := acquireAsync(ctx, l, cpus(1))
	waitQueued(t, l, 2)
	notGranted(t, "small request behind a big one", small)
	usedIs(t, l, cpus(3))

	l.Release(cpus(3))
	granted(t, "big request at the head", big)
	waitQueued(t, l, 1)
	notGranted(t, "small request while the big one holds everything", small)
	usedIs(t, l, cpus(4))

	l.Release(cpus(4))
	granted(t, "small request", small)
	usedIs(t, l, cpus(1))
}

func TestLedgerReleaseWakesEveryWaiterThatFits(t *testing.T) {
	l := NewLedger(cpus(4))
	ctx := context.Background()
	if err := l.Acquire(ctx, cpus(4)); err != nil {
		t.Fatal(err)
	}
	var waits []<-chan error
	for i := range 3 {
		waits = append(waits, acquireAsync(ctx, l, cpus(1)))
		waitQueued(t, l, i+1) // so the queue's order is known
	}
	third := acquireAsync(ctx, l, cpus(2))
	waitQueued(t, l, 4)

	l.Release(cpus(4))
	for i, w := range waits {
		granted(t, fmt.Sprintf("waiter %d", i), w)
	}
	waitQueued(t, l, 1)
	notGranted(t, "2 CPUs with 1 free", third)
	usedIs(t, l, cpus(3))

	l.Release(cpus(1))
	granted(t, "2 CPUs after a release", third)
	usedIs(t, l, cpus(4))
}

func TestLedgerForceGoesPastTheTotal(t *testing.T) {
	l := NewLedger(Resources{2000, 4 * gb})
	ctx := context.Background()
	if err := l.Acquire(ctx, Resources{2000, 1 * gb}); err != nil {
		t.Fatal(err)
	}
	l.Force(Resources{1000, 1 * gb}) // does not wait
	usedIs(t, l, Resources{3000, 2 * gb})

	done := acquireAsync(ctx, l, Resources{1000, 1 * gb})
	waitQueued(t, l, 1)
	notGranted(t, "acquire while over the total", done)

	l.Release(Resources{1000, 1 * gb}) // back to the total: still nothing free
	waitQueued(t, l, 1)
	notGranted(t, "acquire with nothing free", done)

	l.Release(Resources{2000, 1 * gb})
	granted(t, "acquire after the forced share went back", done)
	usedIs(t, l, Resources{1000, 1 * gb})
}

func TestLedgerForceJumpsTheQueue(t *testing.T) {
	l := NewLedger(cpus(2))
	ctx := context.Background()
	if err := l.Acquire(ctx, cpus(2)); err != nil {
		t.Fatal(err)
	}
	done := acquireAsync(ctx, l, cpus(1))
	waitQueued(t, l, 1)
	l.Force(cpus(1))
	usedIs(t, l, cpus(3))
	l.Release(cpus(2))
	// One CPU is free now, but the forced one holds the other.
	granted(t, "waiter", done)
	usedIs(t, l, cpus(2))
}

func TestLedgerCanEverFit(t *testing.T) {
	l := NewLedger(Resources{4000, 2 * gb})
	for _, tt := range []struct {
		need Resources
		want string // "" for no error
	}{
		{Resources{4000, 2 * gb}, ""},
		{Resources{0, 0}, ""},
		{Resources{5000, 1 * gb}, "needs 5 CPUs but the agent has 4 CPUs"},
		{Resources{4500, 1 * gb}, "needs 4.5 CPUs but the agent has 4 CPUs"},
		{Resources{1000, 3 * gb}, "needs 3 GB of memory but the agent has 2 GB"},
		{Resources{1000, 2*gb + 512<<20}, "needs 2.5 GB of memory but the agent has 2 GB"},
		{Resources{8000, 8 * gb}, "needs 8 CPUs but the agent has 4 CPUs"}, // CPUs are said first
	} {
		err := l.CanEverFit(tt.need, Resources{})
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("CanEverFit(%+v) = %q, want %q", tt.need, got, tt.want)
		}
		if tt.want == "" {
			continue
		}
		// Acquire says the same at once instead of waiting forever.
		err = l.Acquire(context.Background(), tt.need)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Acquire(%+v) = %v, want %q", tt.need, err, tt.want)
		}
	}
	usedIs(t, l, Resources{})
}

func TestLedgerCanceledAcquireGivesBackNothingAndLetsOthersProceed(t *testing.T) {
	l := NewLedger(cpus(4))
	if err := l.Acquire(context.Background(), cpus(3)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	why := errors.New("build canceled")
	big := acquireAsync(ctx, l, cpus(4))
	waitQueued(t, l, 1)
	// Behind the big one, a small one that fits the free CPU.
	small := acquireAsync(context.Background(), l, cpus(1))
	waitQueued(t, l, 2)
	notGranted(t, "small request", small)

	cancel(why)
	select {
	case err := <-big:
		if !errors.Is(err, why) {
			t.Fatalf("canceled acquire: %v, want the context's cause", err)
		}
	case <-time.After(patience):
		t.Fatal("canceled acquire did not return")
	}
	// The head left the queue: the small request fits and is granted.
	granted(t, "small request after the head was canceled", small)
	usedIs(t, l, cpus(4))
	waitQueued(t, l, 0)
}

func TestLedgerCanceledAcquireInTheMiddleOfTheQueue(t *testing.T) {
	l := NewLedger(cpus(4))
	if err := l.Acquire(context.Background(), cpus(4)); err != nil {
		t.Fatal(err)
	}
	first := acquireAsync(context.Background(), l, cpus(2))
	waitQueued(t, l, 1)
	ctx, cancel := context.WithCancel(context.Background())
	middle := acquireAsync(ctx, l, cpus(1))
	waitQueued(t, l, 2)
	last := acquireAsync(context.Background(), l, cpus(2))
	waitQueued(t, l, 3)

	cancel()
	if err := <-middle; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled acquire: %v", err)
	}
	waitQueued(t, l, 2)
	notGranted(t, "first", first)
	notGranted(t, "last", last)
	l.Release(cpus(4))
	granted(t, "first", first)
	granted(t, "last", last)
	usedIs(t, l, cpus(4))
}

// TestLedgerGrantRacingCancelDoesNotLeak makes the race happen: the waiter
// has seen its context end and waits for the ledger's lock while a release
// grants it. It must give the grant back and pass it on.
func TestLedgerGrantRacingCancelDoesNotLeak(t *testing.T) {
	l := NewLedger(cpus(4))
	if err := l.Acquire(context.Background(), cpus(4)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	racer := acquireAsync(ctx, l, cpus(2))
	waitQueued(t, l, 1)
	after := acquireAsync(context.Background(), l, cpus(4))
	waitQueued(t, l, 2)

	l.mu.Lock()
	cancel()
	// The racer now leaves its wait for ctx and blocks on the lock we hold.
	waitGoroutine(t, "the canceled Acquire blocked on the ledger's lock", func(stack string) bool {
		return strings.Contains(stack, "(*Ledger).Acquire") && strings.Contains(stack, "sync.(*Mutex).Lock")
	})
	l.releaseLocked(cpus(4)) // grants the racer 2 CPUs; 4 do not fit after it
	if len(l.waiters) != 1 {
		t.Errorf("%d waiters after the grant, want 1", len(l.waiters))
	}
	l.mu.Unlock()

	if err := <-racer; !errors.Is(err, context.Canceled) {
		t.Fatalf("racer: %v, want canceled", err)
	}
	// What the racer was granted went back and on to the next waiter.
	granted(t, "the waiter after the racer", after)
	usedIs(t, l, cpus(4))
	l.Release(cpus(4))
	usedIs(t, l, Resources{})
}

// waitGoroutine waits until some goroutine's stack satisfies match.
func waitGoroutine(t *testing.T, what string, match func(stack string) bool) {
	t.Helper()
	waitFor(t, what, func() bool {
		for _, g := range goroutines() {
			if match(g) {
				return true
			}
		}
		return false
	})
}

// goroutines returns the stack of every goroutine.
func goroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestLedgerStress runs many acquires, some canceled at random moments,
// against releases: the ledger must end empty, with no waiter left and never
// more granted than the total.
func TestLedgerStress(t *testing.T) {
	total := Resources{8000, 8 * gb}
	l := NewLedger(total)
	var wg sync.WaitGroup
	var held sync.Mutex
	var heldNow Resources
	over := make(chan Resources, 1)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for range 200 {
				need := Resources{MilliCPUs: 1000 * r.Int64N(8), Memory: gb * r.Int64N(8)}
				ctx, cancel := context.WithCancel(context.Background())
				if r.IntN(3) == 0 {
					go cancel()
				}
				err := l.Acquire(ctx, need)
				cancel()
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						t.Errorf("acquire: %v", err)
					}
					continue
				}
				held.Lock()
				heldNow.MilliCPUs += need.MilliCPUs
				heldNow.Memory += need.Memory
				if !heldNow.fitsIn(total) {
					select {
					case over <- heldNow:
					default:
					}
				}
				held.Unlock()
				runtime.Gosched()
				held.Lock()
				heldNow.MilliCPUs -= need.MilliCPUs
				heldNow.Memory -= need.Memory
				held.Unlock()
				l.Release(need)
			}
		}()
	}
	wg.Wait()
	select {
	case r := <-over:
		t.Errorf("granted %+v at once, more than the total %+v", r, total)
	default:
	}
	usedIs(t, l, Resources{})
	waitQueued(t, l, 0)
}
