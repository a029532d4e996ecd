package coordinator

import (
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// agentConn is a connected agent: what it said in its Hello (fixed from
// then on), its room and last heartbeat (the agent registry's, under its
// lock), and the queue of messages to send down its stream.
type agentConn struct {
	id      string
	name    string
	pauses  bool // the agent lends waiting scripts' CPU to jobs
	version string
	// instance is the pool instance the agent runs on ("": not a pool's).
	instance  string
	connected time.Time

	// room is what the agent carries and has free, as placement sees it.
	room *agentRoom
	// seen is the agent's last heartbeat (its connection until the first):
	// its "last seen".
	seen time.Time

	// acks wait to be sent (Coordinator.ack); only the stream's loop
	// touches them.
	acks pendingAcks

	out chan *fleet.CoordinatorMessage
	// gone is closed when the stream ends; sends after that are dropped.
	gone chan struct{}
	// revoked is closed when the agent is removed: its stream ends.
	revoked    chan struct{}
	revokeOnce sync.Once
}

// sendBuffer bounds the messages waiting for a slow agent; past it the
// agent's stream is ended, and it reconnects and resends.
const sendBuffer = 1024

func newAgentConn(id string) *agentConn {
	return &agentConn{id: id, out: make(chan *fleet.CoordinatorMessage, sendBuffer), gone: make(chan struct{}), revoked: make(chan struct{})}
}

// revoke ends the agent's stream; it may be called more than once.
func (a *agentConn) revoke() { a.revokeOnce.Do(func() { close(a.revoked) }) }

// send queues m for the agent without blocking; it reports whether it could.
func (a *agentConn) send(m *fleet.CoordinatorMessage) bool {
	select {
	case <-a.gone:
		return false
	default:
	}
	select {
	case a.out <- m:
		return true
	default:
		return false
	}
}

// assign sends b to the agent, to be fetched as src says (b's source URL
// with its credential, if any, and the repository's deploy key and depth).
func (a *agentConn) assign(b *Build, src *fleet.Source, secrets map[string]string) {
	a.send(&fleet.CoordinatorMessage{Msg: &fleet.CoordinatorMessage_Assign{Assign: &fleet.Assign{
		Build:        &fleet.BuildAttempt{BuildId: b.ID, Attempt: int32(b.Attempt)},
		LeaseExpires: timestamppb.New(b.LeaseExpires),
		Source:       src,
		Params:       b.Params,
		Repo:         b.Repo,
		Secrets:      secrets,
		Cache:        &fleet.CacheScope{Scope: b.Cache.Scope, Fallback: b.Cache.Fallback},
	}}})
}

func (a *agentConn) cancel(build string, attempt int) {
	a.send(&fleet.CoordinatorMessage{Msg: &fleet.CoordinatorMessage_Cancel{Cancel: &fleet.Cancel{
		Build: &fleet.BuildAttempt{BuildId: build, Attempt: int32(attempt)},
	}}})
}

func (a *agentConn) refuse(build string, attempt int32, reason string) {
	a.send(&fleet.CoordinatorMessage{Msg: &fleet.CoordinatorMessage_Refuse{Refuse: &fleet.Refuse{
		Build: &fleet.BuildAttempt{BuildId: build, Attempt: attempt}, Reason: reason,
	}}})
}

// pendingAcks are acknowledgements not sent yet, one per attempt.
type pendingAcks []*fleet.Ack

// add merges a into the attempt's acknowledgement waiting, if any: what
// is stored only grows, so the highest seq and offsets tell it all, and
// an end stored stays stored.
func (p *pendingAcks) add(a *fleet.Ack) {
	for _, have := range *p {
		if have.GetBuild().GetBuildId() != a.GetBuild().GetBuildId() || have.GetBuild().GetAttempt() != a.GetBuild().GetAttempt() {
			continue
		}
		have.Seq = max(have.Seq, a.Seq)
		have.Done = have.Done || a.Done
	next:
		for _, lo := range a.Logs {
			for _, h := range have.Logs {
				if h.Job == lo.Job && h.Stream == lo.Stream {
					h.Offset = max(h.Offset, lo.Offset)
					continue next
				}
			}
			have.Logs = append(have.Logs, lo)
		}
		return
	}
	*p = append(*p, a)
}
