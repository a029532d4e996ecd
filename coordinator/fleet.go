package coordinator

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

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
	term := c.lead.Load()
	if term == nil {
		return c.standingBy(ctx)
	}
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
		case <-term.ended:
			return c.standingBy(ctx)
		case m = <-msgs:
		default:
			// Nothing more yet: acknowledge what is stored.
			if err := c.flushAcks(conn); err != nil {
				return err
			}
			select {
			case <-conn.revoked:
				return errRemoved
			case <-term.ended:
				return c.standingBy(ctx)
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
		if err != nil && !errors.Is(err, ErrNotFound) {
			// The store away (a database restarting) is no verdict on the
			// credential: the agent tries again as itself, keeping its
			// builds, rather than joining anew and losing them.
			return nil, nil, status.Errorf(codes.Unavailable, "reading agent %s: %v", h.GetId(), err)
		}
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
