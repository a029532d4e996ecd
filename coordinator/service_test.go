package coordinator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
)

// A service build runs on a fleet as it runs locally (cmd/monkeyci's
// TestServicesExampleRuns): its dependent reaches it by name, and its
// readiness is stored with the build's events.
func TestServiceBuildOnAFleet(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	dockertest.RequireImage(t, "monkeyci/httpd:latest")
	f := newFleet(t, 10*time.Second)
	f.startAgent(t, "a1", agent.Resources{MilliCPUs: 2000, Memory: 8 << 30})
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": `
- {id: web, image: monkeyci/httpd:latest, expose: [8080], cpus: 0.25}
- {id: fetch, image: monkeyci/busybox:latest, dependencies: [web], cpus: 0.25, script: ["wget -qO- http://web:8080/"]}
`})
	ctx := context.Background()
	b, err := f.c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: repo, Commit: commit}})
	if err != nil {
		t.Fatal(err)
	}
	if ended := f.waitEnded(t, b.ID); ended.Result != events.Success {
		t.Fatalf("build ended %+v", ended)
	}
	evs, err := f.store.Events(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	ready := false
	for _, e := range evs {
		ready = ready || e.Event.Type == events.JobReady && e.Event.Job == "web" && len(e.Event.Expose) == 1
	}
	if !ready {
		t.Errorf("no job/ready of web among the stored events")
	}
	out := make([]byte, 4096)
	n, _ := f.logs.ReadAt(logstore.Key{Build: b.ID, Attempt: 1, Job: "fetch", Stream: "out"}, 0, out)
	if !strings.Contains(string(out[:n]), "hello from monkeyci/httpd") {
		t.Errorf("fetch printed %q", out[:n])
	}
}
