package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/coordinator/logarchive"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// logsText is what `monkeyci logs` gets of an attempt: every chunk, by
// stream (a merged job's streams together), in order.
func logsText(t *testing.T, api fleet.AdminClient, id string, attempt int, follow bool) string {
	t.Helper()
	stream, err := api.Logs(as("admin-secret"), &fleet.LogsRequest{Build: id, Attempt: int32(attempt), Follow: follow})
	if err != nil {
		t.Fatal(err)
	}
	groups := map[string]string{}
	for {
		ch, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		g := ch.GetJob() + "/" + ch.GetStream()
		if ch.GetCommand() != "" || ch.GetStart() {
			g = ch.GetJob() + " merged"
		}
		groups[g] += fmt.Sprintf("  %d %q %s %v %q\n", ch.GetOffset(), ch.GetData(), ch.GetCommand(), ch.GetStart(), ch.GetLine())
	}
	var b strings.Builder
	for _, g := range slices.Sorted(func(yield func(string) bool) {
		for k := range groups {
			if !yield(k) {
				return
			}
		}
	}) {
		b.WriteString(g + ":\n" + groups[g])
	}
	return b.String()
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// An attempt's logs leave the coordinator's disk for the blob store once
// it has ended: a lost agent's at once, while the next attempt runs; the
// last once the build ends. `monkeyci logs` gets them the same before and
// after, to the byte.
func TestEndedAttemptsLogsMoveToTheBlobStoreAndReadTheSame(t *testing.T) {
	fleettest.EachBlobStore(t, func(t *testing.T, blobs blob.Store) {
		f := newFleet(t, time.Hour, func(c *coordinator.Config) {
			c.Blobs, c.AgentGrace = blobs, 100*time.Millisecond
		})
		api := adminAPI(t, f)
		first, _ := recoveryAgent(t, f, "first")
		b := f.triggerPlain(t)
		ba1 := assignedTo(t, first, b.ID)
		first.SendOutput(t, ba1, fleettest.SampleOutput(1))
		one := logsText(t, api, b.ID, 1, false)
		if !strings.Contains(one, "attempt 1, step 29 says hello") || !strings.Contains(one, "long/out:\n  0 ") || !strings.Contains(one, "\n  524288 ") {
			t.Fatalf("attempt 1's logs read:\n%.3000s", one)
		}

		second, _ := recoveryAgent(t, f, "second")
		first.Hangup(t)
		ba2 := assignedTo(t, second, b.ID)
		builds := filepath.Join(f.disk.Root(), "builds", b.ID)
		wait.For(t, "attempt 1's logs to leave the disk", func() bool { return !exists(filepath.Join(builds, "1")) })
		if got := logsText(t, api, b.ID, 1, false); got != one {
			t.Errorf("moved, attempt 1's logs read otherwise: %s", firstDiff(got, one))
		}
		second.SendOutput(t, ba2, fleettest.SampleOutput(2))
		two := logsText(t, api, b.ID, 2, false)
		if two == one || !strings.Contains(two, "attempt 2, step 29") {
			t.Fatalf("attempt 2's logs read:\n%.3000s", two)
		}

		second.Send(t, fleettest.Done(ba2, events.Success, 0))
		if _, err := second.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAck().GetDone() }); err != nil {
			t.Fatal(err)
		}
		wait.For(t, "the build's logs to leave the disk", func() bool { return !exists(builds) })
		for attempt, want := range map[int]string{1: one, 2: two} {
			for _, follow := range []bool{false, true} {
				if got := logsText(t, api, b.ID, attempt, follow); got != want {
					t.Errorf("the build ended, attempt %d's logs read otherwise (follow %v): %s", attempt, follow, firstDiff(got, want))
				}
			}
			if _, err := blobs.Stat(context.Background(), logarchive.Key(b.ID, attempt)); err != nil {
				t.Errorf("attempt %d's archive: %v", attempt, err)
			}
		}
	})
}

// firstDiff shows the first line where got and want part.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got  %.300s\n want %.300s", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}

// At start the coordinator moves what an earlier run left on disk of
// attempts that ended: a move it had not begun, and one a crash cut short
// between the put and the removal. A running build's logs stay.
func TestLogsLeftOnDiskMoveAtStart(t *testing.T) {
	fleettest.EachBlobStore(t, func(t *testing.T, blobs blob.Store) {
		ctx := context.Background()
		now := time.Now()
		// Builds are looked at in the order of their ids: the running
		// build's before the others.
		builds := []coordinator.Build{
			{ID: "a-running", State: coordinator.Running, Attempt: 1, Agent: "away", LeaseExpires: now.Add(time.Hour)},
			{ID: "b-ended", State: coordinator.Ended, Result: events.Success, Attempt: 2, Ended: now},
			{ID: "c-crashed", State: coordinator.Ended, Result: events.Failure, Attempt: 1, Ended: now},
		}
		var disk *logstore.Store
		f := newFleet(t, time.Hour, func(c *coordinator.Config) {
			c.Blobs, disk = blobs, c.Logs.(*logstore.Store)
			for _, b := range builds {
				b.Repo, b.Source, b.Created, b.Started = "/repo", coordinator.Source{URL: "/repo"}, now, now
				if err := c.Store.CreateBuild(ctx, b); err != nil {
					t.Fatal(err)
				}
				for n := 1; n <= b.Attempt; n++ {
					writeOutput(t, disk, b.ID, n)
				}
			}
			crashedBetweenPutAndRemoval(t, disk, blobs, "c-crashed", 1)
		})
		root := filepath.Join(f.disk.Root(), "builds")
		wait.For(t, "the ended builds' logs to leave the disk", func() bool {
			return !exists(filepath.Join(root, "b-ended")) && !exists(filepath.Join(root, "c-crashed"))
		})
		if !exists(filepath.Join(root, "a-running", "1")) {
			t.Error("the running build's logs left the disk")
		}
		for _, b := range builds {
			for n := 1; n <= b.Attempt; n++ {
				for _, o := range fleettest.SampleOutput(n) {
					key := logstore.Key{Build: b.ID, Attempt: n, Job: o.Job, Stream: o.Stream}
					if got := f.readLog(t, key); got != string(o.Data) {
						t.Errorf("%s reads %d bytes, want the %d written", key, len(got), len(o.Data))
					}
				}
			}
		}
	})
}

// writeOutput writes an attempt's sample output to disk.
func writeOutput(t *testing.T, disk *logstore.Store, build string, attempt int) {
	t.Helper()
	for _, o := range fleettest.SampleOutput(attempt) {
		key := logstore.Key{Build: build, Attempt: attempt, Job: o.Job, Stream: o.Stream}
		if _, err := disk.Write(key, 0, o.Data); err != nil {
			t.Fatal(err)
		}
	}
}

// crashedBetweenPutAndRemoval leaves an attempt's logs on disk and in the
// blob store, as a coordinator killed between the two steps of a move: it
// moves them from a copy of the disk.
func crashedBetweenPutAndRemoval(t *testing.T, disk *logstore.Store, blobs blob.Store, build string, attempt int) {
	t.Helper()
	copied, err := logstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer copied.Close()
	streams, err := disk.Sizes(build, attempt)
	if err != nil || len(streams) == 0 {
		t.Fatalf("nothing on disk to copy: %v", err)
	}
	for _, st := range streams {
		data := make([]byte, st.Size)
		if _, err := disk.ReadAt(st.Key, 0, data); err != nil {
			t.Fatal(err)
		}
		if _, err := copied.Write(st.Key, 0, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := logarchive.New(copied, blobs).Archive(context.Background(), build, attempt); err != nil {
		t.Fatal(err)
	}
}
