package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// lease is a Lease in memory: who holds it is set by the test.
type lease struct {
	mu       sync.Mutex
	holder   string
	term     int64
	failing  bool
	resigned []int64
	fenced   []int64 // the terms Fence was given, in order
}

func (l *lease) Claim(_ context.Context, me Member, _ time.Duration) (Holder, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing {
		return Holder{}, errors.New("the database does not answer")
	}
	if l.holder == "" {
		l.holder, l.term = me.ID, l.term+1
	}
	return Holder{ID: l.holder, Term: l.term}, nil
}

func (l *lease) Resign(_ context.Context, id string, term int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.holder == id && l.term == term {
		l.holder = ""
		l.resigned = append(l.resigned, term)
	}
	return nil
}

func (l *lease) Members(context.Context, time.Duration, time.Duration) ([]Member, error) {
	return nil, nil
}

func (l *lease) Fence(_ string, term int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fenced = append(l.fenced, term)
}

func (l *lease) set(change func(*lease)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	change(l)
}

// leads runs an elector over l and reports each lead's term when it
// starts, and when it ends.
func leads(t *testing.T, l Lease, ttl time.Duration) (e *Elector, started chan int64, ended chan int64, stop func()) {
	started, ended = make(chan int64, 10), make(chan int64, 10)
	e = NewElector(l, Member{ID: "me"}, ttl, nil, func(ctx context.Context, term int64) {
		started <- term
		<-ctx.Done()
		ended <- term
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return e, started, ended, stop
}

func within(t *testing.T, ch chan int64, what string) int64 {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		return 0
	}
}

func TestItLeadsWhileItHoldsTheRoleAndStopsWhenAnotherTakesIt(t *testing.T) {
	l := &lease{}
	e, started, ended, _ := leads(t, l, 150*time.Millisecond)
	if term := within(t, started, "lead"); term != 1 {
		t.Errorf("led at term %d, want 1", term)
	}
	if r := e.Role(); !r.Leading || r.Term != 1 {
		t.Errorf("role %+v while leading", r)
	}
	l.set(func(l *lease) { l.holder, l.term = "other", 2 })
	if term := within(t, ended, "step down"); term != 1 {
		t.Errorf("stepped down from term %d", term)
	}
	if r := e.Role(); r.Leading || r.Leader.ID != "other" {
		t.Errorf("role %+v after another took the role", r)
	}
}

// A leader that cannot renew steps down once its lease may have run out,
// before anyone else can claim the role.
func TestItStepsDownWhenItCannotRenewInTime(t *testing.T) {
	l := &lease{}
	const ttl = 300 * time.Millisecond
	_, started, ended, _ := leads(t, l, ttl)
	within(t, started, "lead")
	l.set(func(l *lease) { l.failing = true })
	failed := time.Now()
	within(t, ended, "step down")
	// It steps down at the lease's end; the bound leaves a busy machine
	// room to schedule it (the role's lease itself is the database's).
	if took := time.Since(failed); took > 10*ttl {
		t.Errorf("stepped down %s after renewals began to fail, want about the ttl (%s)", took, ttl)
	}
	// The database answers again and nobody took over: it leads again.
	l.set(func(l *lease) { l.failing = false })
	within(t, started, "lead again")
}

func TestItResignsWhenItStops(t *testing.T) {
	l := &lease{}
	_, started, ended, stop := leads(t, l, time.Second)
	within(t, started, "lead")
	stop()
	within(t, ended, "the lead to end")
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.resigned) != 1 || l.resigned[0] != 1 {
		t.Errorf("resigned %v, want term 1", l.resigned)
	}
	if fmt.Sprint(l.fenced) != "[1 0]" {
		t.Errorf("fenced %v, want term 1 while leading, then none", l.fenced)
	}
}
