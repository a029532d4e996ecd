package coordinator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func hello(token string, protocol fleet.ProtocolVersion) *fleet.AgentMessage {
	return &fleet.AgentMessage{Msg: &fleet.AgentMessage_Hello{Hello: &fleet.Hello{
		Protocol: protocol, Name: "raw", Token: token, Capacity: &fleet.Capacity{MilliCpus: 0, Memory: 0},
	}}}
}

func TestBadHandshakesAreRefusedWithAClearStatus(t *testing.T) {
	f := newFleet(t, 10*time.Second)
	tests := []struct {
		name string
		msg  *fleet.AgentMessage
		code codes.Code
		says string
	}{
		{"wrong join token", hello("guess", fleet.ProtocolVersion_PROTOCOL_VERSION_1), codes.Unauthenticated, "join token"},
		{"no token", hello("", fleet.ProtocolVersion_PROTOCOL_VERSION_1), codes.Unauthenticated, "join token"},
		{"other protocol", hello("join-secret", fleet.ProtocolVersion(7)), codes.FailedPrecondition, "protocol version 7"},
		{"not a hello first", &fleet.AgentMessage{Msg: &fleet.AgentMessage_Heartbeat{Heartbeat: &fleet.Heartbeat{}}}, codes.InvalidArgument, "Hello"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := fleettest.Dial(t, f.addr)
			a.Send(t, tc.msg)
			_, err := a.RecvUntil(t, func(*fleet.CoordinatorMessage) bool { return false })
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.says) {
				t.Errorf("got %v, want %s saying %q", err, tc.code, tc.says)
			}
		})
	}
	agents, err := f.store.ListAgents(context.Background())
	if err != nil || len(agents) != 0 {
		t.Errorf("agents stored after refused handshakes: %v %v", agents, err)
	}
}

func TestReportsOnBuildsThatAreNotTheAgentsAreRefusedAndNothingIsStored(t *testing.T) {
	f := newFleet(t, 10*time.Second)
	ctx := context.Background()
	queued, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: "/nowhere"}})
	if err != nil {
		t.Fatal(err)
	}
	a := fleettest.Dial(t, f.addr)
	a.Join(t, hello("join-secret", fleet.ProtocolVersion_PROTOCOL_VERSION_1).GetHello())
	ba := func(id string, attempt int32) *fleet.BuildAttempt {
		return &fleet.BuildAttempt{BuildId: id, Attempt: attempt}
	}
	tests := []struct {
		name string
		msg  *fleet.AgentMessage
		says string
	}{
		{"event of an unknown build", &fleet.AgentMessage{Msg: &fleet.AgentMessage_Event{Event: &fleet.BuildEvent{Build: ba("nosuch", 1), Seq: 1, Event: []byte(`{"type":"build/start"}`)}}}, "not running"},
		{"event of a build that is not running", &fleet.AgentMessage{Msg: &fleet.AgentMessage_Event{Event: &fleet.BuildEvent{Build: ba(queued.ID, 1), Seq: 1, Event: []byte(`{"type":"build/start"}`)}}}, "not running"},
		{"log of a stale attempt", &fleet.AgentMessage{Msg: &fleet.AgentMessage_Log{Log: &fleet.LogChunk{Build: ba(queued.ID, 3), Job: "j", Stream: "out", Data: []byte("x")}}}, "not running"},
		{"oversized chunk", &fleet.AgentMessage{Msg: &fleet.AgentMessage_Log{Log: &fleet.LogChunk{Build: ba(queued.ID, 1), Job: "j", Stream: "out", Data: make([]byte, coordinator.MaxLogChunk+1)}}}, "larger than"},
		{"end of a build that is not running", &fleet.AgentMessage{Msg: &fleet.AgentMessage_Done{Done: &fleet.BuildDone{Build: ba(queued.ID, 1), Result: "success"}}}, "not running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a.Send(t, tc.msg)
			m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetRefuse() != nil })
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(m.GetRefuse().GetReason(), tc.says) {
				t.Errorf("refused with %q, want it to say %q", m.GetRefuse().GetReason(), tc.says)
			}
		})
	}
	evs, err := f.store.Events(ctx, queued.ID)
	if err != nil || len(evs) != 0 {
		t.Errorf("events stored: %v %v", evs, err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		if streams, _ := f.logs.Sizes(queued.ID, attempt); len(streams) != 0 {
			t.Errorf("logs stored for attempt %d: %v", attempt, streams)
		}
	}
	if b, _ := f.store.GetBuild(ctx, queued.ID); b.State != coordinator.Queued {
		t.Errorf("the build is %s, want still queued", b.State)
	}
}
