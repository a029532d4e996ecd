package coordinator

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// repoBuild is build id of repo, created n seconds after an epoch.
func repoBuild(repo string, n int) *Build {
	return &Build{ID: fmt.Sprintf("%s-%d", repo, n), Repo: repo, Created: time.Unix(1_000_000+int64(n), 0)}
}

func queueIDs(d *dispatcher) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return mapIDs(d.queue, func(b *Build) string { return b.ID })
}

// A repository with many builds queued does not hold back another's: the
// queue takes them in turns, each repository's in the order they came.
func TestRepositoriesTakeTurns(t *testing.T) {
	d := newTestDispatcher()
	for n := 1; n <= 50; n++ {
		d.add(repoBuild("busy", n))
	}
	d.add(repoBuild("quiet", 51))
	d.add(repoBuild("other", 52))
	d.add(repoBuild("other", 53))
	want := []string{"busy-1", "quiet-51", "other-52", "busy-2", "other-53", "busy-3"}
	if got := queueIDs(d)[:6]; !slices.Equal(got, want) {
		t.Fatalf("queue begins %v, want %v", got, want)
	}

	// One agent, room for two: the quiet repository's one build goes in
	// the first pass, beside the busy one's first.
	connectAgent(t, d, "a1", 2, nil)
	placed, _ := d.pass()
	if got := placedIDs(placed); !slices.Equal(got, []string{"busy-1@a1", "quiet-51@a1"}) {
		t.Errorf("placed %v, want busy-1 and quiet-51", got)
	}
	// A build queued now starts from the turns served: it is not put
	// behind the busy repository's 49 others.
	d.add(repoBuild("late", 60))
	if got := queueIDs(d)[:4]; !slices.Equal(got, []string{"other-52", "busy-2", "other-53", "late-60"}) {
		t.Errorf("after a build of another repository came: queue begins %v", got)
	}
}

// Builds canceled while queued (superseded ones) cost their repository no
// turns; a build sent back after an attempt goes first.
func TestWithdrawnBuildsCostNoTurnsAndASentBackBuildGoesFirst(t *testing.T) {
	d := newTestDispatcher()
	for n := 1; n <= 5; n++ {
		d.add(repoBuild("pushy", n))
	}
	for n := 1; n <= 4; n++ {
		if b, _, ok := d.cancel(fmt.Sprintf("pushy-%d", n)); !ok || b == nil {
			t.Fatalf("pushy-%d was not queued", n)
		}
	}
	d.add(repoBuild("calm", 10))
	d.add(repoBuild("pushy", 11))
	if got := queueIDs(d); !slices.Equal(got, []string{"pushy-5", "calm-10", "pushy-11"}) {
		t.Errorf("queue %v, want pushy-5, calm-10, pushy-11: the canceled builds' turns are not held", got)
	}

	back := repoBuild("calm", 3)
	back.Attempt = 1
	d.requeue(back)
	if got := queueIDs(d)[0]; got != "calm-3" {
		t.Errorf("queue begins with %s, want calm-3, sent back after its attempt", got)
	}
}
