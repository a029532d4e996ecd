package coordinator_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// adminAPI is the fixture's admin API over gRPC, as a bearer of token.
func adminAPI(t *testing.T, f *fleetFixture) fleet.AdminClient {
	t.Helper()
	conn, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return fleet.NewAdminClient(conn)
}

func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// An admin's unblock of a job that waits for one goes down the stream of
// the agent that runs the build, naming the attempt; what cannot be
// unblocked is refused with a status that says why.
func TestUnblockJobReachesTheAgentRunningTheBuild(t *testing.T) {
	f := newFleet(t, time.Minute)
	api := adminAPI(t, f)
	admin := as("admin-secret")
	a := fleettest.Dial(t, f.addr)
	a.Join(t, fleettest.Hello("raw", "join-secret", &fleet.Capacity{MilliCpus: 4000, Memory: 8 << 30}))
	b, err := api.Trigger(admin, &fleet.TriggerRequest{Url: "/nowhere"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign() != nil })
	if err != nil {
		t.Fatal(err)
	}
	ba := m.GetAssign().GetBuild()
	if ba.GetBuildId() != b.GetId() {
		t.Fatalf("assigned %v, want %s", ba, b.GetId())
	}
	a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Accept{Accept: &fleet.Accept{Build: ba}}})
	a.Send(t, fleettest.Event(t, ba, 1, events.Event{Type: events.JobBlocked, Job: "gate", Message: "waits for a manual unblock"}))
	if _, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAck().GetSeq() >= 1 }); err != nil {
		t.Fatal(err)
	}

	info, err := api.UnblockJob(admin, &fleet.UnblockJobRequest{Build: b.GetId(), Job: "gate"})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetId() != b.GetId() || info.GetState() != string(coordinator.Running) {
		t.Errorf("UnblockJob answered %v, want the running build", info)
	}
	m, err = a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetUnblock() != nil })
	if err != nil {
		t.Fatal(err)
	}
	if u := m.GetUnblock(); u.GetBuild().GetBuildId() != b.GetId() || u.GetBuild().GetAttempt() != ba.GetAttempt() || u.GetJob() != "gate" {
		t.Errorf("the agent got %v, want gate of %v", u, ba)
	}

	viewer, err := api.CreateToken(admin, &fleet.CreateTokenRequest{Kind: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	queued, err := api.Trigger(admin, &fleet.TriggerRequest{Url: "/nowhere", Labels: map[string]string{"os": "plan9"}})
	if err != nil {
		t.Fatal(err)
	}
	refused := func(name string, ctx context.Context, build, job string, code codes.Code, says string) {
		t.Helper()
		_, err := api.UnblockJob(ctx, &fleet.UnblockJobRequest{Build: build, Job: job})
		if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), says) {
			t.Errorf("%s: %v, want %s saying %q", name, err, code, says)
		}
	}
	refused("a viewer", as(viewer.GetToken()), b.GetId(), "gate", codes.PermissionDenied, "viewer token may not call UnblockJob")
	refused("an unknown build", admin, "nosuch", "gate", codes.NotFound, "nosuch")
	refused("a queued build", admin, queued.GetId(), "gate", codes.FailedPrecondition,
		"build "+queued.GetId()+" is queued: only a running build's jobs can be unblocked")
	refused("a job that does not wait", admin, b.GetId(), "deploy", codes.FailedPrecondition, `job "deploy" of build `+b.GetId()+" does not wait for an unblock")
	refused("no job", admin, b.GetId(), "", codes.InvalidArgument, "say the build and the job")

	// Once the agent says gate is unblocked, it is not unblocked again.
	a.Send(t, fleettest.Event(t, ba, 2, events.Event{Type: events.JobUnblocked, Job: "gate"}))
	if _, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAck().GetSeq() >= 2 }); err != nil {
		t.Fatal(err)
	}
	refused("a job already unblocked", admin, b.GetId(), "gate", codes.FailedPrecondition, "already unblocked")

	a.Send(t, fleettest.Done(ba, events.Success, 2))
	f.waitEnded(t, b.GetId())
	refused("an ended build", admin, b.GetId(), "gate", codes.FailedPrecondition,
		"build "+b.GetId()+" is ended: only a running build's jobs can be unblocked")
}

// End to end: a build whose job waits for an approval runs on, on a real
// agent, once an admin unblocks it.
func TestUnblockedJobRunsOnTheAgent(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	f := newFleet(t, 10*time.Second)
	f.startAgent(t, "a1", agent.Resources{MilliCPUs: 2000, Memory: 8 << 30})
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": `
- {id: a, image: monkeyci/busybox:latest, script: ['echo a']}
- {id: gate, image: monkeyci/busybox:latest, script: ['echo approved'], blocked: true, dependencies: [a]}
- {id: b, image: monkeyci/busybox:latest, script: ['echo b'], dependencies: [gate]}
`})
	ctx := context.Background()
	b, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: repo, Commit: commit}})
	if err != nil {
		t.Fatal(err)
	}
	stored := func() []string {
		evs, err := f.store.Events(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range evs {
			out = append(out, string(e.Event.Type)+" "+e.Event.Job)
		}
		return out
	}
	wait.For(t, "job/blocked gate stored", func() bool { return slices.Contains(stored(), "job/blocked gate") })
	if _, err := adminAPI(t, f).UnblockJob(as("admin-secret"), &fleet.UnblockJobRequest{Build: b.ID, Job: "gate"}); err != nil {
		t.Fatal(err)
	}
	if got := f.waitEnded(t, b.ID); got.Result != events.Success {
		t.Fatalf("the build ended %s (%s), want success", got.Result, got.Message)
	}
	evs := stored()
	at := func(e string) int {
		i := slices.Index(evs, e)
		if i < 0 {
			t.Fatalf("no %s in %v", e, evs)
		}
		return i
	}
	// gate may be blocked, and unblocked, before a ends; it starts after.
	if !(at("job/blocked gate") < at("job/unblocked gate") && at("job/unblocked gate") < at("job/start gate") &&
		at("job/end a") < at("job/start gate") && at("job/end gate") < at("job/start b")) {
		t.Errorf("events out of order: %v", evs)
	}
}
