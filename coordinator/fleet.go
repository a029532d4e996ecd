package coordinator

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// MaxLogChunk is the largest log chunk an agent may send.
const MaxLogChunk = 1 << 20

// FleetServer serves the fleet protocol to agents.
type FleetServer struct {
	fleet.UnimplementedFleetServer
	c *Coordinator
}

var _ fleet.FleetServer = (*FleetServer)(nil)

// FleetServer returns the coordinator's gRPC service for agents.
func (c *Coordinator) FleetServer() *FleetServer { return &FleetServer{c: c} }

// Connect serves one agent's stream, from its Hello to its end.
func (s *FleetServer) Connect(stream fleet.Fleet_ConnectServer) error {
	c, ctx := s.c, stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message on the stream must be a Hello")
	}
	if hello.GetProtocol() != fleet.ProtocolVersion_PROTOCOL_VERSION_1 {
		return status.Errorf(codes.FailedPrecondition, "protocol version %d is not spoken here (this coordinator speaks %d)", hello.GetProtocol(), fleet.ProtocolVersion_PROTOCOL_VERSION_1)
	}
	conn, welcome, err := c.admit(ctx, hello)
	if err != nil {
		return err
	}
	if err := stream.Send(&fleet.CoordinatorMessage{Msg: &fleet.CoordinatorMessage_Welcome{Welcome: welcome}}); err != nil {
		return err
	}
	lost, err := c.register(conn, hello.GetHolding())
	if err != nil {
		return err
	}
	defer c.unregister(conn)
	c.reconcile(conn, hello.GetHolding())
	// Back after a restart, without builds it was sent: they go on now.
	c.recover(conn.id, lost, ReasonAgentRestarted)
	c.log.Info("agent connected", "agent", conn.id, "name", conn.name, "capacity", conn.room.capacity)

	sendErr := make(chan error, 1)
	go func() {
		for {
			select {
			case m := <-conn.out:
				if err := stream.Send(m); err != nil {
					sendErr <- err
					return
				}
			case <-conn.gone:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	// The stream's only receiver. Through it the loop below sees whether
	// more messages wait: acknowledgements wait for the agent's messages
	// that came together to be handled, and go in one per attempt (an
	// agent sends an attempt's last event and its end back to back: one
	// Ack{done} answers both).
	msgs := make(chan *fleet.AgentMessage, 16)
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	c.poke()
	for {
		var m *fleet.AgentMessage
		select {
		case <-conn.revoked:
			return errRemoved
		case m = <-msgs:
		default:
			// Nothing more yet: acknowledge what is stored.
			if err := c.flushAcks(conn); err != nil {
				return err
			}
			select {
			case <-conn.revoked:
				return errRemoved
			case m = <-msgs:
			case err := <-recvErr:
				return c.drain(ctx, conn, msgs, err)
			case err := <-sendErr:
				return err
			}
		}
		if err := c.handle(ctx, conn, m); err != nil {
			return err
		}
	}
}

// drain handles the messages an agent sent before its stream ended with
// err, and acknowledges them.
func (c *Coordinator) drain(ctx context.Context, conn *agentConn, msgs <-chan *fleet.AgentMessage, err error) error {
	for len(msgs) > 0 { // the receiver has stopped: nothing more comes
		if err := c.handle(ctx, conn, <-msgs); err != nil {
			return err
		}
	}
	if ferr := c.flushAcks(conn); ferr != nil && err == nil {
		return ferr
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// admit checks an agent's token: its own credential, or a join token that
// is exchanged for a new credential.
func (c *Coordinator) admit(ctx context.Context, h *fleet.Hello) (*agentConn, *fleet.Welcome, error) {
	welcome := &fleet.Welcome{LeaseMillis: c.cfg.Lease.Milliseconds(), HeartbeatMillis: (c.cfg.Lease / 3).Milliseconds()}
	var agent Agent
	if h.GetId() != "" {
		a, err := c.cfg.Store.GetAgent(ctx, h.GetId())
		if err == nil && !a.Removed.IsZero() {
			return nil, nil, errRemoved
		}
		if err != nil || subtle.ConstantTimeCompare([]byte(hashToken(h.GetToken())), []byte(a.CredentialHash)) != 1 {
			return nil, nil, status.Error(codes.Unauthenticated, "unknown agent or wrong credential: join again with a join token")
		}
		agent = a
	} else {
		if !c.isJoinToken(ctx, h.GetToken()) {
			return nil, nil, status.Error(codes.Unauthenticated, "wrong join token")
		}
		credential := NewID() + NewID()
		agent = Agent{ID: NewID(), CredentialHash: hashToken(credential), Joined: c.cfg.Now()}
		welcome.Credential = credential
	}
	agent.Name, agent.Labels, agent.LastSeen = h.GetName(), h.GetLabels(), c.cfg.Now()
	if err := c.cfg.Store.SaveAgent(ctx, agent); err != nil {
		return nil, nil, status.Errorf(codes.Unavailable, "storing the agent: %v", err)
	}
	welcome.Id = agent.ID
	conn := newAgentConn(agent.ID)
	conn.name, conn.version = agent.Name, h.GetVersion()
	conn.pauses, conn.instance, conn.connected = h.GetPauses(), h.GetInstance(), c.cfg.Now()
	conn.seen = conn.connected
	capacity := Capacity{h.GetCapacity().GetMilliCpus(), h.GetCapacity().GetMemory()}
	conn.room = newAgentRoom(agent.ID, agent.Labels, capacity, c.needOn(conn.pauses))
	conn.room.cordoned = agent.Cordoned
	return conn, welcome, nil
}

func (c *Coordinator) isJoinToken(ctx context.Context, token string) bool {
	if token == "" {
		return false
	}
	if c.cfg.JoinToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(c.cfg.JoinToken)) == 1 {
		return true
	}
	t, err := c.CheckToken(ctx, token)
	return err == nil && t.Kind == TokenAgent
}

func hashToken(t string) string {
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:])
}

// register makes conn the agent's connection, ending an older one. It
// returns the attempts leased to the agent that it does not hold (its
// hello's list): it lost them in a restart. A removed agent is refused.
func (c *Coordinator) register(conn *agentConn, holding []*fleet.BuildAttempt) ([]attemptRef, error) {
	return c.agents.connect(conn, attemptsOf(holding))
}

// attemptsOf maps build ids to attempts.
func attemptsOf(bas []*fleet.BuildAttempt) map[string]int {
	out := make(map[string]int, len(bas))
	for _, ba := range bas {
		out[ba.GetBuildId()] = int(ba.GetAttempt())
	}
	return out
}

func (c *Coordinator) unregister(conn *agentConn) {
	seen, lost := c.agents.disconnect(conn)
	if lost {
		time.AfterFunc(c.cfg.AgentGrace, func() { c.graceOver(conn) })
	}
	c.log.Info("agent disconnected", "agent", conn.id)
	// Its last heartbeat is kept: what "last seen" says of it from now on.
	ctx, cancel := context.WithTimeout(context.Background(), recoveryTimeout)
	defer cancel()
	if err := c.cfg.Store.SeenAgent(ctx, conn.id, seen); err != nil {
		c.log.Warn("could not keep when an agent was last seen", "agent", conn.id, "error", err)
	}
}

// reconcile refuses the attempts an agent holds that are no longer its.
func (c *Coordinator) reconcile(conn *agentConn, holding []*fleet.BuildAttempt) {
	for _, ba := range holding {
		if why := c.notCurrent(conn, ba); why != "" {
			conn.refuse(ba.GetBuildId(), ba.GetAttempt(), why)
		}
	}
}

// notCurrent says why an attempt is not the agent's to report on, or "".
func (c *Coordinator) notCurrent(conn *agentConn, ba *fleet.BuildAttempt) string {
	return c.leases.whyNotCurrent(ba.GetBuildId(), int(ba.GetAttempt()), conn.id)
}

// handle takes one message from an agent. A returned error ends the stream.
func (c *Coordinator) handle(ctx context.Context, conn *agentConn, m *fleet.AgentMessage) error {
	switch msg := m.GetMsg().(type) {
	case *fleet.AgentMessage_Accept:
		return nil
	case *fleet.AgentMessage_Heartbeat:
		return c.heartbeat(ctx, conn, msg.Heartbeat)
	case *fleet.AgentMessage_Event:
		return c.event(ctx, conn, msg.Event)
	case *fleet.AgentMessage_Log:
		return c.logChunk(conn, msg.Log)
	case *fleet.AgentMessage_Done:
		return c.done(ctx, conn, msg.Done)
	case *fleet.AgentMessage_Decline:
		return c.decline(ctx, conn, msg.Decline)
	case *fleet.AgentMessage_Hello:
		return status.Error(codes.InvalidArgument, "Hello may only be the first message")
	}
	return status.Error(codes.InvalidArgument, "empty or unknown message")
}

func (c *Coordinator) heartbeat(ctx context.Context, conn *agentConn, hb *fleet.Heartbeat) error {
	free := Capacity{hb.GetFree().GetMilliCpus(), hb.GetFree().GetMemory()}
	c.agents.heartbeat(conn, free, attemptsOf(hb.GetRunning()), hb.GetDraining())
	expires := c.cfg.Now().Add(c.cfg.Lease)
	for _, ba := range hb.GetRunning() {
		if why := c.notCurrent(conn, ba); why != "" {
			conn.refuse(ba.GetBuildId(), ba.GetAttempt(), why)
			continue
		}
		if err := c.cfg.Store.Renew(ctx, ba.GetBuildId(), int(ba.GetAttempt()), expires); err != nil {
			if errors.Is(err, ErrStale) {
				conn.refuse(ba.GetBuildId(), ba.GetAttempt(), err.Error())
				continue
			}
			return status.Errorf(codes.Unavailable, "renewing a lease: %v", err)
		}
	}
	c.poke()
	return nil
}

func (c *Coordinator) event(ctx context.Context, conn *agentConn, be *fleet.BuildEvent) error {
	ba := be.GetBuild()
	if why := c.notCurrent(conn, ba); why != "" {
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), why)
		return nil
	}
	var e events.Event
	if err := json.Unmarshal(be.GetEvent(), &e); err != nil || be.GetSeq() < 1 {
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), fmt.Sprintf("event %d is malformed", be.GetSeq()))
		return nil
	}
	se := StoredEvent{BuildID: ba.GetBuildId(), Attempt: int(ba.GetAttempt()), Seq: be.GetSeq(), Event: e}
	stored, err := c.cfg.Store.AppendEvent(ctx, se)
	if err != nil {
		if errors.Is(err, ErrStale) || errors.Is(err, ErrNotFound) {
			// The attempt ended or moved on since the check above.
			conn.refuse(ba.GetBuildId(), ba.GetAttempt(), err.Error())
			return nil
		}
		return status.Errorf(codes.Unavailable, "storing an event: %v", err)
	}
	if stored { // not a resent one
		c.metrics.eventStored(e)
		c.noteEvent(se)
	}
	seq, err := c.storedThroughAfter(ctx, se.BuildID, se.Attempt, se.Seq)
	if err != nil {
		return status.Errorf(codes.Unavailable, "reading stored events: %v", err)
	}
	return c.ack(conn, &fleet.Ack{Build: ba, Seq: seq})
}

// storedThroughAfter returns how far an attempt's events are stored with
// none missing, now that seq is stored. In the common case (events stored
// in order by this process) the lease knows it; otherwise the store is
// read. What it returns is stored: never above the store's count.
func (c *Coordinator) storedThroughAfter(ctx context.Context, id string, attempt int, seq int64) (int64, error) {
	if through, known := c.leases.storedThroughAfter(id, attempt, seq); known {
		return through, nil
	}
	return c.readStoredThrough(ctx, id, attempt)
}

// readStoredThrough reads from the store how far an attempt's events are
// stored with none missing, and keeps it in the lease.
func (c *Coordinator) readStoredThrough(ctx context.Context, id string, attempt int) (int64, error) {
	through, err := c.cfg.Store.LastSeq(ctx, id, attempt)
	if err != nil {
		return 0, err
	}
	c.leases.raiseStoredThrough(id, attempt, through)
	return through, nil
}

func (c *Coordinator) logChunk(conn *agentConn, lc *fleet.LogChunk) error {
	ba := lc.GetBuild()
	if len(lc.GetData()) > MaxLogChunk {
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), fmt.Sprintf("a log chunk of %d bytes is larger than %d", len(lc.GetData()), MaxLogChunk))
		return nil
	}
	if why := c.notCurrent(conn, ba); why != "" {
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), why)
		return nil
	}
	key := LogKey{Build: ba.GetBuildId(), Attempt: int(ba.GetAttempt()), Job: lc.GetJob(), Stream: lc.GetStream()}
	size, err := c.cfg.Logs.Write(key, lc.GetOffset(), lc.GetData())
	if err != nil && size == 0 && lc.GetOffset() == 0 {
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), fmt.Sprintf("log chunk refused: %v", err))
		return nil
	}
	// On a gap the stored size tells the agent where to resend from.
	return c.ack(conn, &fleet.Ack{Build: ba, Logs: []*fleet.LogOffset{{Job: key.Job, Stream: key.Stream, Offset: size}}})
}

func (c *Coordinator) done(ctx context.Context, conn *agentConn, d *fleet.BuildDone) error {
	ba := d.GetBuild()
	if why := c.notCurrent(conn, ba); why != "" {
		conn.refuse(ba.GetBuildId(), ba.GetAttempt(), why)
		return nil
	}
	// What the lease counts is stored already; only when it falls short is
	// the store asked (it may know more).
	seq := c.leases.storedThrough(ba.GetBuildId(), int(ba.GetAttempt()))
	if seq < d.GetLastSeq() {
		var err error
		if seq, err = c.readStoredThrough(ctx, ba.GetBuildId(), int(ba.GetAttempt())); err != nil {
			return status.Errorf(codes.Unavailable, "reading stored events: %v", err)
		}
	}
	if seq < d.GetLastSeq() {
		// Not everything is stored yet: the agent resends from seq.
		return c.ack(conn, &fleet.Ack{Build: ba, Seq: seq})
	}
	if needs := d.GetNeeds(); len(needs) > 0 {
		return c.handBack(ctx, conn, ba, needs, d.GetMessage(), seq)
	}
	result := events.Result(d.GetResult())
	switch result {
	case events.Success, events.Failure, events.Error, events.Canceled:
	default:
		result = events.Error
	}
	err := c.cfg.Store.Finish(ctx, ba.GetBuildId(), int(ba.GetAttempt()), result, d.GetMessage())
	if err != nil && !errors.Is(err, ErrStale) {
		return status.Errorf(codes.Unavailable, "ending the build: %v", err)
	}
	l, _ := c.dispatcher.endLease(ba.GetBuildId(), int(ba.GetAttempt()))
	if err == nil {
		c.buildEnded(ba.GetBuildId(), l.forge, result, d.GetMessage())
	} else {
		c.notifyEnded(ba.GetBuildId())
	}
	c.poke()
	return c.ack(conn, &fleet.Ack{Build: ba, Seq: seq, Done: true})
}

// handBack queues a build again for an agent with the labels it turned out
// to need (its jobs' arch, say): the attempt that found it out ends here,
// and the build waits for such an agent, saying so.
func (c *Coordinator) handBack(ctx context.Context, conn *agentConn, ba *fleet.BuildAttempt, needs map[string]string, why string, seq int64) error {
	b, err := c.cfg.Store.GetBuild(ctx, ba.GetBuildId())
	if err != nil {
		return status.Errorf(codes.Unavailable, "reading a build handed back: %v", err)
	}
	labels := maps.Clone(b.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, needs)
	reason := "needs an agent with " + formatLabels(needs)
	attempt := int(ba.GetAttempt())
	if err := c.cfg.Store.Handback(ctx, b.ID, attempt, reason, labels); err != nil {
		if errors.Is(err, ErrStale) {
			return c.ack(conn, &fleet.Ack{Build: ba, Seq: seq, Done: true})
		}
		return status.Errorf(codes.Unavailable, "handing back a build: %v", err)
	}
	c.log.Info("an agent handed a build back; queued again", "build", b.ID, "agent", conn.id, "needs", formatLabels(needs), "why", why)
	b.State, b.Agent, b.Labels, b.queuedAt = Queued, "", labels, c.cfg.Now()
	if b.AttemptReasons == nil {
		b.AttemptReasons = map[int]string{}
	}
	b.AttemptReasons[attempt+1] = reason
	c.dispatcher.handBack(&b, attempt)
	c.changed()
	c.poke()
	return c.ack(conn, &fleet.Ack{Build: ba, Seq: seq, Done: true})
}

// decline puts back in the queue an assignment the agent will not run.
func (c *Coordinator) decline(ctx context.Context, conn *agentConn, d *fleet.Decline) error {
	ba := d.GetBuild()
	if why := c.notCurrent(conn, ba); why != "" {
		return nil // ended or moved on already
	}
	if err := c.cfg.Store.Requeue(ctx, ba.GetBuildId(), int(ba.GetAttempt()), ReasonDeclined); err != nil {
		if errors.Is(err, ErrStale) {
			return nil
		}
		return status.Errorf(codes.Unavailable, "requeueing a declined build: %v", err)
	}
	b, err := c.cfg.Store.GetBuild(ctx, ba.GetBuildId())
	if err != nil {
		return status.Errorf(codes.Unavailable, "reading a declined build: %v", err)
	}
	c.log.Info("agent declined a build; queued again", "build", b.ID, "agent", conn.id, "reason", d.GetReason())
	b.queuedAt = c.cfg.Now()
	c.dispatcher.handBack(&b, int(ba.GetAttempt()))
	c.changed()
	c.poke()
	return nil
}

// ack acknowledges what is stored of an attempt. It is sent when the
// stream's loop has handled the messages waiting (flushAcks), merged with
// the other acknowledgements of the attempt meanwhile. Only the stream's
// loop calls it.
func (c *Coordinator) ack(conn *agentConn, a *fleet.Ack) error {
	conn.acks.add(a)
	return nil
}

// flushAcks sends the acknowledgements waiting.
func (c *Coordinator) flushAcks(conn *agentConn) error {
	for i, a := range conn.acks {
		conn.acks[i] = nil
		if !conn.send(&fleet.CoordinatorMessage{Msg: &fleet.CoordinatorMessage_Ack{Ack: a}}) {
			conn.acks = conn.acks[:0]
			return status.Error(codes.ResourceExhausted, "the agent does not read its stream: reconnect")
		}
	}
	conn.acks = conn.acks[:0]
	return nil
}
