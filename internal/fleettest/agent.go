// Package fleettest drives a coordinator's agent stream by hand, as an
// agent would (or as none would), for the tests of the coordinator and of
// what stands on it.
package fleettest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Wait bounds every wait for a message from the coordinator.
const Wait = 30 * time.Second

// Agent is one agent stream, driven by hand. A reader takes the
// coordinator's messages as they come, so a test that waits for one does
// not hold the stream up.
type Agent struct {
	stream fleet.Fleet_ConnectClient
	msgs   chan *fleet.CoordinatorMessage
	end    error // why the stream ended, once msgs is closed
}

// Dial opens an agent stream to the fleet service at addr (without TLS)
// for the test's life.
func Dial(t testing.TB, addr string) *Agent {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := fleet.NewFleetClient(conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{stream: stream, msgs: make(chan *fleet.CoordinatorMessage, 1024)}
	go a.read()
	return a
}

func (a *Agent) read() {
	for {
		m, err := a.stream.Recv()
		if err != nil {
			a.end = err
			close(a.msgs)
			return
		}
		a.msgs <- m
	}
}

// Send sends m on the stream.
func (a *Agent) Send(t testing.TB, m *fleet.AgentMessage) {
	t.Helper()
	if err := a.stream.Send(m); err != nil {
		t.Fatal(err)
	}
}

// RecvUntil returns the next message that match accepts, passing over the
// others, or the status the stream ended with. It fails the test when
// neither comes within Wait.
func (a *Agent) RecvUntil(t testing.TB, match func(*fleet.CoordinatorMessage) bool) (*fleet.CoordinatorMessage, error) {
	t.Helper()
	timeout := time.After(Wait)
	for {
		select {
		case m, ok := <-a.msgs:
			if !ok {
				return nil, a.end
			}
			if match(m) {
				return m, nil
			}
		case <-timeout:
			t.Fatalf("no such message from the coordinator within %s", Wait)
		}
	}
}

// Join says h and returns the id the coordinator's welcome gives the agent.
func (a *Agent) Join(t testing.TB, h *fleet.Hello) string {
	t.Helper()
	return a.Welcome(t, h).GetId()
}

// Welcome says h and returns the coordinator's welcome (with the agent's
// new credential when h had a join token).
func (a *Agent) Welcome(t testing.TB, h *fleet.Hello) *fleet.Welcome {
	t.Helper()
	a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Hello{Hello: h}})
	m, err := a.RecvUntil(t, func(*fleet.CoordinatorMessage) bool { return true })
	if err != nil || m.GetWelcome() == nil {
		t.Fatalf("no welcome: %v %v", m, err)
	}
	return m.GetWelcome()
}

// Hangup ends the agent's side of the stream, as a killed agent's closed
// socket does: the coordinator sees the stream end.
func (a *Agent) Hangup(t testing.TB) {
	t.Helper()
	if err := a.stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

// Hello is a hello of the current protocol with a join token and a
// capacity.
func Hello(name, token string, capacity *fleet.Capacity) *fleet.Hello {
	return &fleet.Hello{Protocol: fleet.ProtocolVersion_PROTOCOL_VERSION_1, Name: name, Token: token, Capacity: capacity}
}

// Event is an agent's report of e, the seq-th event of attempt ba.
func Event(t testing.TB, ba *fleet.BuildAttempt, seq int64, e events.Event) *fleet.AgentMessage {
	t.Helper()
	body, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return &fleet.AgentMessage{Msg: &fleet.AgentMessage_Event{Event: &fleet.BuildEvent{Build: ba, Seq: seq, Event: body}}}
}

// Done is an agent's report of the end of attempt ba, after lastSeq events.
func Done(ba *fleet.BuildAttempt, result events.Result, lastSeq int64) *fleet.AgentMessage {
	return &fleet.AgentMessage{Msg: &fleet.AgentMessage_Done{Done: &fleet.BuildDone{Build: ba, Result: string(result), LastSeq: lastSeq}}}
}
