// Package leader chooses, among coordinators sharing one database, the one
// that runs what must run once: dispatch, lease checks, the pool's scaler,
// retention and forge statuses. The others stand by and serve.
//
// The role is a lease in the database (a row holding the leader's id, a
// term and an expiry set by the database's clock): a coordinator claims it
// when it has expired, the holder renews it every ttl/3. Each new holder
// gets the next term, and the database refuses the changes only a leader
// makes unless they name the current holder and term (the fencing number),
// so a leader that was paused past its lease and wakes up changes nothing.
// A leader also stops acting by itself once ttl has passed since the start
// of its last successful claim, before anyone else can claim.
package leader

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Member is a coordinator as it announces itself to the others.
type Member struct {
	ID      string    `json:"id"`
	GRPC    string    `json:"grpc"` // where agents and clients reach it
	HTTP    string    `json:"http"`
	Version string    `json:"version,omitempty"`
	Started time.Time `json:"started"`
	// Seen is its last claim or renewal, by the database's clock.
	Seen time.Time `json:"seen,omitzero"`
	// Leader and Term say it holds the role, as the database says.
	Leader bool  `json:"leader,omitempty"`
	Term   int64 `json:"term,omitempty"`
	// Gone: not seen within the role's lease (stopped, killed, or cut off
	// from the database).
	Gone bool `json:"gone,omitempty"`
}

// Holder is who holds the role after a claim.
type Holder struct {
	ID   string
	Term int64
	GRPC string // its address, for redirects
	HTTP string
}

// Lease is the role as the database keeps it.
type Lease interface {
	// Claim renews the role for me when I hold it, takes it when its
	// lease has expired, and records me as a member; it returns who holds
	// the role then.
	Claim(ctx context.Context, me Member, ttl time.Duration) (Holder, error)
	// Resign gives the role up, if id holds it at term.
	Resign(ctx context.Context, id string, term int64) error
	// Members lists the coordinators seen within since, the leader marked,
	// and those not seen within alive marked gone.
	Members(ctx context.Context, since, alive time.Duration) ([]Member, error)
	// Fence makes the changes only a leader makes carry id and term from
	// now on, so that they apply only while the database says id holds the
	// role at term; term 0 refuses them all. The elector sets it as it
	// begins to lead, and clears it as it stops, before it waits for what
	// was leading to end.
	Fence(id string, term int64)
}

// Role is what the elector says this coordinator is.
type Role struct {
	Leading bool
	Term    int64  // while leading
	Leader  Holder // the holder last seen (zero: none known)
}

// Elector claims the role in a loop and says when this coordinator leads.
type Elector struct {
	lease Lease
	me    Member
	ttl   time.Duration
	log   hclog.Logger
	// lead runs while this coordinator leads, with a context that ends
	// when it stops leading; it must return once that context ends.
	lead func(ctx context.Context, term int64)
	now  func() time.Time

	mu   sync.Mutex
	role Role
}

// DefaultTTL is how long the role lives without a renewal: the longest a
// failover waits for a leader that died.
const DefaultTTL = 3 * time.Second

// NewElector makes an elector for me; lead is run each time me leads.
func NewElector(lease Lease, me Member, ttl time.Duration, log hclog.Logger, lead func(ctx context.Context, term int64)) *Elector {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Elector{lease: lease, me: me, ttl: ttl, log: log, lead: lead, now: time.Now}
}

// Role says what this coordinator is now.
func (e *Elector) Role() Role {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.role
}

// Run claims the role every ttl/3 until ctx ends, running lead while it
// holds it; at the end it resigns, so a standby takes over at once.
func (e *Elector) Run(ctx context.Context) {
	every := e.ttl / 3
	var (
		stop     context.CancelFunc // ends the running lead (nil: not leading)
		stopped  chan struct{}
		term     int64
		deadline time.Time // leading is safe until then
	)
	stepDown := func(why string) {
		if stop == nil {
			return
		}
		e.log.Warn("no longer the leader", "term", term, "why", why)
		e.lease.Fence(e.me.ID, 0)
		e.set(func(r *Role) { r.Leading, r.Term = false, 0 })
		stop()
		<-stopped
		stop = nil
	}
	defer func() {
		if stop != nil {
			stepDown("shutting down")
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.ttl)
			defer cancel()
			if err := e.lease.Resign(rctx, e.me.ID, term); err != nil {
				e.log.Warn("could not resign the leader's role: a standby takes over when it expires", "error", err)
			}
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		started := e.now()
		limit := every
		if stop != nil {
			// A claim that hangs must not keep a leader past its lease.
			limit = max(min(every, deadline.Sub(started)), time.Millisecond)
		}
		cctx, cancel := context.WithTimeout(ctx, limit)
		h, err := e.lease.Claim(cctx, e.me, e.ttl)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			e.log.Warn("could not claim or renew the leader's role", "error", err)
			if stop != nil && !e.now().Before(deadline) {
				stepDown("the role's lease ran out while the database did not answer")
			}
		case h.ID == e.me.ID:
			deadline = started.Add(e.ttl)
			if stop != nil && h.Term != term {
				stepDown("another term began")
			}
			if stop == nil {
				term = h.Term
				e.lease.Fence(e.me.ID, term)
				lctx, cancel := context.WithCancel(ctx)
				stop, stopped = cancel, make(chan struct{})
				e.set(func(r *Role) { r.Leading, r.Term, r.Leader = true, term, h })
				e.log.Info("leading", "term", term)
				go func(done chan struct{}) {
					defer close(done)
					e.lead(lctx, term)
				}(stopped)
			}
		default:
			e.set(func(r *Role) { r.Leader = h })
			stepDown("coordinator " + h.ID + " leads")
		}
		next := every
		if stop != nil {
			// Wake up in time to step down if renewals keep failing.
			next = min(next, max(deadline.Sub(e.now()), time.Millisecond))
		}
		timer.Reset(next)
	}
}

func (e *Elector) set(change func(*Role)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	change(&e.role)
}
