package coordinator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A build that runs past its repository's timeout is canceled on its
// agent, and ends saying it timed out, whatever its agent reports; a
// build of a repository without one has the coordinator's, an hour here,
// and runs on.
func TestABuildPastItsTimeoutIsCanceledAndSaysSo(t *testing.T) {
	// The agent here sends no heartbeat: the lease outlives the test.
	f := newFleet(t, 30*time.Second)
	ctx := context.Background()
	for _, r := range []*fleet.Repo{
		{Name: "acme/slow", Url: "/srv/git/slow", BuildTimeoutSeconds: 1},
		{Name: "acme/other", Url: "/srv/git/other"},
	} {
		if _, err := f.c.AdminServer().AddRepo(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	a := fleettest.Dial(t, f.addr)
	a.Welcome(t, fleettest.Hello("timed", "join-secret", &fleet.Capacity{MilliCpus: 4000, Memory: 16 << 30}))
	running := map[string]*fleet.BuildAttempt{}
	for _, repo := range []string{"acme/other", "acme/slow"} {
		b, err := f.c.Trigger(ctx, coordinator.Build{Repo: repo, Source: coordinator.Source{URL: "/srv/git/" + strings.TrimPrefix(repo, "acme/")}})
		if err != nil {
			t.Fatal(err)
		}
		m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign() != nil })
		if err != nil {
			t.Fatal(err)
		}
		ba := m.GetAssign().GetBuild()
		a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Accept{Accept: &fleet.Accept{Build: ba}}})
		running[b.ID] = ba
	}

	m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetCancel() != nil })
	if err != nil {
		t.Fatal(err)
	}
	ba := m.GetCancel().GetBuild()
	slow := ba.GetBuildId()
	if b, _ := f.store.GetBuild(ctx, slow); b.Repo != "acme/slow" {
		t.Fatalf("canceled build %s of %s, want acme/slow's", slow, b.Repo)
	}
	a.Send(t, fleettest.Done(ba, events.Canceled, 0))
	ended := f.waitEnded(t, slow)
	if ended.Result != events.Canceled || !strings.HasPrefix(ended.Message, "timed out: it ran longer than its build timeout of 1s") {
		t.Errorf("the slow build ended %s %q, want canceled, saying it timed out", ended.Result, ended.Message)
	}
	for id := range running {
		if id == slow {
			continue
		}
		if b, _ := f.store.GetBuild(ctx, id); b.State != coordinator.Running {
			t.Errorf("acme/other's build is %s %q, want still running under the coordinator's hour", b.State, b.Message)
		}
	}
}

// A build canceled for its timeout whose agent is lost before it says so
// ends canceled, saying it timed out: it is not run again.
func TestATimedOutBuildWhoseAgentIsLostEndsCanceled(t *testing.T) {
	f := newFleet(t, 30*time.Second, func(cfg *coordinator.Config) {
		cfg.AgentGrace = 100 * time.Millisecond
		cfg.BuildTimeout = time.Second
	})
	ctx := context.Background()
	a := fleettest.Dial(t, f.addr)
	a.Welcome(t, fleettest.Hello("lost", "join-secret", &fleet.Capacity{MilliCpus: 4000, Memory: 16 << 30}))
	b, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: "/srv/git/slow"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign() != nil })
	if err != nil {
		t.Fatal(err)
	}
	a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Accept{Accept: &fleet.Accept{Build: m.GetAssign().GetBuild()}}})
	if _, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetCancel() != nil }); err != nil {
		t.Fatal(err)
	}
	a.Hangup(t)
	ended := f.waitEnded(t, b.ID)
	if ended.Result != events.Canceled || ended.Attempt != 1 || !strings.HasPrefix(ended.Message, "timed out:") {
		t.Errorf("ended %s at attempt %d %q, want canceled at attempt 1, saying it timed out", ended.Result, ended.Attempt, ended.Message)
	}
}
