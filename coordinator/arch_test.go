package coordinator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// TestBuildGoesToAnAgentOfItsJobsArch: a build with a job for arm machines,
// sent to an amd agent, is handed back before any job runs and waits,
// saying for what, until an arm agent joins; that one runs it as attempt 2.
// (The arm agent is this machine saying arch=arm, as an operator does for
// one that emulates it: busybox runs all the same.)
func TestBuildGoesToAnAgentOfItsJobsArch(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	f := newFleet(t, 10*time.Second)
	f.startArchAgent(t, "amd-1", agent.Resources{MilliCPUs: 2000, Memory: 8 << 30}, "amd")
	repo, commit := gittest.Repo(t, map[string]string{
		".monkeyci/build.yaml": "- {id: any, image: monkeyci/busybox:latest, script: ['echo anywhere']}\n" +
			"- {id: on-arm, image: monkeyci/busybox:latest, arch: arm, script: ['echo on arm']}\n",
	})
	ctx := context.Background()
	b, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: repo, Commit: commit}})
	if err != nil {
		t.Fatal(err)
	}
	var got coordinator.Build
	wait.For(t, "the build queued again, waiting for an arm agent", func() bool {
		if got, err = f.store.GetBuild(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		if got.State == coordinator.Ended {
			t.Fatalf("the build ended %+v, want it queued again, waiting for an arm agent", got)
		}
		return got.State == coordinator.Queued && got.Attempt == 1 && strings.Contains(got.Waiting, "arch=arm")
	})
	if got.AttemptReasons[2] != "needs an agent with arch=arm" || got.Labels[agent.LabelArch] != "arm" {
		t.Errorf("handed back as %+v", got)
	}
	evs, err := f.store.Events(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Event.Type == events.JobStart {
			t.Errorf("a job started on the amd agent: %+v", e.Event)
		}
	}
	f.startArchAgent(t, "arm-1", agent.Resources{MilliCPUs: 2000, Memory: 8 << 30}, "arm")
	ended := f.waitEnded(t, b.ID)
	if ended.Result != events.Success || ended.Attempt != 2 {
		t.Fatalf("build ended %+v, want success at attempt 2", ended)
	}
}
