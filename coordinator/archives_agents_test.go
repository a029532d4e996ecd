package coordinator_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/s3test"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A cache saved by a build on one agent is restored by the next build of
// the branch on another agent, with a state dir of its own: the first is
// gone (the pool scaled in), and so is the second before a third agent
// takes the third build (the pool scaled to zero and back). Through the
// coordinator's disk store and through an S3 server.
func TestACacheOutlivesTheAgentThatSavedIt(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	backends := map[string]func(t *testing.T) blob.Store{
		"disk": nil, // the fixture's own
		"s3": func(t *testing.T) blob.Store {
			srv := s3test.Start(t)
			c, _ := blob.ParseS3URL(srv.URL())
			c.AccessKey, c.SecretKey = srv.AccessKey, srv.SecretKey
			s, err := blob.OpenS3(context.Background(), c)
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			var opts []func(*coordinator.Config)
			if open != nil {
				store := open(t)
				opts = append(opts, func(c *coordinator.Config) { c.Blobs = store })
			}
			cacheCrossesAgents(t, newFleet(t, 10*time.Second, opts...))
		})
	}
}

func cacheCrossesAgents(t *testing.T, f *fleetFixture) {
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": `
id: cached
image: monkeyci/busybox:latest
caches: [{id: deps, path: .deps}]
script:
  - mkdir -p .deps && cat .deps/count 2>/dev/null || echo none
  - echo "$(( $(cat .deps/count 2>/dev/null || echo 0) + 1 ))" > .deps/count
`})
	ctx := context.Background()
	api := f.c.AdminServer()
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: repo}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"none", "1", "2"} {
		name := fmt.Sprintf("agent-%d", i+1)
		_, stop := f.startAgent(t, name, agent.Resources{MilliCPUs: 2000, Memory: 8 << 30})
		info, err := api.Trigger(ctx, &fleet.TriggerRequest{Repo: "acme/app", Branch: "main", Commit: commit})
		if err != nil {
			t.Fatal(err)
		}
		b := f.waitEnded(t, info.GetId())
		if b.Result != events.Success {
			t.Fatalf("build %d: %s (%s)", i+1, b.Result, b.Message)
		}
		if saw := strings.TrimSpace(storedLog(t, f, b.ID, "cached")); saw != want {
			t.Errorf("build %d on %s saw the cache hold %q, want %q", i+1, name, saw, want)
		}
		stop() // the pool takes the agent away, state dir and all
		f.waitAgentGone(t, name)
	}
}

// waitAgentGone waits until the coordinator no longer counts the agent
// named name among those ready for builds.
func (f *fleetFixture) waitAgentGone(t *testing.T, name string) {
	t.Helper()
	wait.For(t, "agent "+name+" to be gone", func() bool {
		list, err := f.c.AdminServer().ListAgents(context.Background(), &fleet.ListAgentsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range list.GetAgents() {
			if a.GetName() == name && a.GetState() != "lost" {
				return false
			}
		}
		return true
	})
}

// A job restores an artifact an earlier build of its repository saved,
// byte for byte, after the agent that made it is gone; a build of another
// repository cannot.
func TestAJobRestoresAnEarlierBuildsArtifact(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	f := newFleet(t, 10*time.Second)
	maker, _ := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": `
id: make
image: monkeyci/busybox:latest
save-artifacts: [{id: bin, path: out}]
script:
  - mkdir -p out && head -c 300000 /dev/urandom > out/app && md5sum out/app | cut -d' ' -f1 > out/app.md5
`})
	user, _ := gittest.Repo(t, map[string]string{".monkeyci/script.yaml": "image: monkeyci/busybox:latest\n", ".monkeyci/build.sh": `set -e
from=$(monkeyci param get from)
monkeyci job run use --image monkeyci/busybox:latest --restore-artifact "$from:bin:got" -- \
  'test "$(md5sum got/app | cut -d" " -f1)" = "$(cat got/app.md5)" && echo same bytes'
`})
	ctx := context.Background()
	api := f.c.AdminServer()
	_, stop := f.startAgent(t, "maker", agent.Resources{MilliCPUs: 2000, Memory: 8 << 30})
	made, err := api.Trigger(ctx, &fleet.TriggerRequest{Url: maker, Repo: "acme/app"})
	if err != nil {
		t.Fatal(err)
	}
	if b := f.waitEnded(t, made.GetId()); b.Result != events.Success {
		t.Fatalf("the build that saves the artifact: %s %s", b.Result, b.Message)
	}
	stop()
	f.waitAgentGone(t, "maker")
	f.startAgent(t, "user", agent.Resources{MilliCPUs: 2000, Memory: 8 << 30})

	for _, tc := range []struct {
		repo string
		want events.Result
	}{{"acme/app", events.Success}, {"mallory/other", events.Error}} {
		info, err := api.Trigger(ctx, &fleet.TriggerRequest{Url: user, Repo: tc.repo, Params: map[string]string{"from": made.GetId()}})
		if err != nil {
			t.Fatal(err)
		}
		b := f.waitEnded(t, info.GetId())
		if b.Result != tc.want {
			t.Logf("the script said: %s", storedLogStream(t, f, b.ID, "", "err"))
			t.Errorf("a build of %s restoring build %s's artifact: %s (%s), want %s", tc.repo, made.GetId(), b.Result, b.Message, tc.want)
		}
		if tc.want == events.Success && !strings.Contains(storedLog(t, f, b.ID, "use"), "same bytes") {
			t.Errorf("the restored artifact is not the one saved: %q", storedLog(t, f, b.ID, "use"))
		}
	}
}

// storedLogStream is a job's stream as the coordinator stored it.
func storedLogStream(t *testing.T, f *fleetFixture, build, job, stream string) string {
	t.Helper()
	return f.readLog(t, coordinator.LogKey{Build: build, Attempt: 1, Job: job, Stream: stream})
}

// A cache in the fleet's store with an entry that would leave its path (a
// store someone tampered with) fails the job that restores it, with a
// line naming the entry, and the agent keeps nothing of it.
func TestAHostileCacheFromTheStoreFailsItsJob(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	f := newFleet(t, 10*time.Second)
	ctx := context.Background()
	ba, owner, raw := runningAttempt(t, f, "acme/app", "main")
	var hostile bytes.Buffer
	tw := tar.NewWriter(&hostile)
	for _, e := range []struct{ name, body string }{{"ok.txt", "fine"}, {"../../../etc/evil", "escaped"}} {
		_ = tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg})
		_, _ = tw.Write([]byte(e.body))
	}
	tw.Close()
	if err := owner.save(ctx, said(&fleet.BlobRequest{Build: ba, Kind: "cache", Id: "deps"}, hostile.Bytes()), hostile.Bytes()); err != nil {
		t.Fatal(err)
	}
	raw.Send(t, fleettest.Done(ba, events.Success, 0))
	f.waitEnded(t, ba.GetBuildId())
	raw.Hangup(t) // so that the next build goes to the real agent
	f.waitAgentGone(t, "raw-"+ba.GetBuildId())

	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": `
id: cached
image: monkeyci/busybox:latest
caches: [{id: deps, path: .deps}]
script: ["echo ran"]
`})
	stateDir := t.TempDir()
	f.startAgentIn(t, "victim", stateDir)
	info, err := f.c.AdminServer().Trigger(ctx, &fleet.TriggerRequest{Url: repo, Repo: "acme/app", Branch: "main", Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	b := f.waitEnded(t, info.GetId())
	evs, err := f.store.Events(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	var said string
	for _, e := range evs {
		if e.Event.Type == events.JobEnd {
			said = e.Event.Message
		}
	}
	if b.Result == events.Success || !strings.Contains(said, "../../../etc/evil") {
		t.Errorf("a job restoring a hostile cache: build %s, job said %q", b.Result, said)
	}
	if strings.Contains(storedLog(t, f, b.ID, "cached"), "ran") {
		t.Error("the job ran with a hostile cache in place")
	}
	_ = filepath.WalkDir(stateDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, "deps.tar") {
			t.Errorf("the agent kept the hostile cache: %s", p)
		}
		return nil
	})
}
