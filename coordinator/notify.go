package coordinator

import "sync/atomic"

// broadcast tells whoever waits that something changed: wait returns a
// channel that notify closes, and the next wait gets a new one. With
// nobody waiting, notify is one atomic load, so the dispatch path can call
// it for every build and event.
type broadcast struct {
	ch atomic.Pointer[chan struct{}]
}

func (b *broadcast) wait() <-chan struct{} {
	for {
		if p := b.ch.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if b.ch.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

func (b *broadcast) notify() {
	if b.ch.Load() == nil {
		return
	}
	if p := b.ch.Swap(nil); p != nil {
		close(*p)
	}
}

// Changes returns a channel closed at the next change to a build or its
// events: created, assigned, an event stored, queued again, ended. Take it
// before reading what it guards, so that no change falls in between; then
// call it again.
func (c *Coordinator) Changes() <-chan struct{} { return c.changes.wait() }

// BuildChanges is Changes for the build records alone (created, assigned,
// why one waits, queued again, ended), not their events: a list of builds
// need not look again for every line a job prints.
func (c *Coordinator) BuildChanges() <-chan struct{} { return c.buildChanges.wait() }

// changed wakes whoever waits on a change to a build.
func (c *Coordinator) changed() {
	c.buildChanges.notify()
	c.changes.notify()
}

// eventStored wakes whoever waits on Changes.
func (c *Coordinator) eventStored() { c.changes.notify() }

// Revocations returns a channel closed at the next revocation of a token.
func (c *Coordinator) Revocations() <-chan struct{} { return c.revocations.wait() }
