package coordinator

import (
	"fmt"
	"slices"
	"strings"
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
	// A build queued now joins the turn being served (other-52's): it is
	// not put behind the busy repository's 49 others.
	d.add(repoBuild("late", 60))
	if got := queueIDs(d)[:4]; !slices.Equal(got, []string{"other-52", "late-60", "busy-2", "other-53"}) {
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

// A repository's limit holds: its builds beyond it wait, saying why, while
// another repository's go; one goes once one of its running builds ends.
// A build placed but not yet leased counts, and so does a new build that
// would skip the queue.
func TestARepositorysLimitOfRunningBuildsHolds(t *testing.T) {
	d := newTestDispatcher()
	a1 := connectAgent(t, d, "a1", 4, nil)
	d.setLimits(map[string]int{"capped": 1})
	d.add(repoBuild("capped", 1))
	d.add(repoBuild("capped", 2))
	d.add(repoBuild("free", 3))
	placed, reasons := d.pass()
	if got := placedIDs(placed); !slices.Equal(got, []string{"capped-1@a1", "free-3@a1"}) {
		t.Fatalf("placed %v, want capped-1 and free-3", got)
	}
	if len(reasons) != 1 || reasons[0].build.ID != "capped-2" || !strings.Contains(reasons[0].why, "as many builds as it may at once (1,") {
		t.Fatalf("reasons %+v, want capped-2 waiting for its repository's limit", reasons)
	}
	if d.placeNow(repoBuild("capped", 4)) != nil {
		t.Error("a new build of the capped repository skipped the queue while capped-1 is being sent")
	}
	d.startLease("capped-1", lease{attempt: 1, agent: "a1", repo: "capped"}, a1)
	if placed, _ := d.pass(); len(placed) != 0 {
		t.Errorf("placed %v while capped-1 runs", placedIDs(placed))
	}
	d.endLease("capped-1", 1)
	if placed, _ := d.pass(); !slices.Equal(placedIDs(placed), []string{"capped-2@a1"}) {
		t.Errorf("once capped-1 ended: placed %v, want capped-2", placedIDs(placed))
	}
	d.unplace(repoBuild("capped", 2), a1) // its store write failed
	d.setLimits(nil)
	if placed, _ := d.pass(); len(placed) != 0 {
		t.Errorf("placed %v with nothing queued", placedIDs(placed))
	}
	if d.placeNow(repoBuild("capped", 5)) == nil {
		t.Error("with no limit, a new build did not go at once")
	}
}

// Builds served past others that wait (these need a label no agent has)
// do not push a newcomer behind those that wait: it joins the turn being
// served.
func TestANewcomerJoinsTheTurnBeingServed(t *testing.T) {
	d := servedPastWaiting(t)
	d.add(repoBuild("newcomer", 30))
	if got := queueIDs(d)[:2]; !slices.Equal(got, []string{"waiting-1", "newcomer-30"}) {
		t.Errorf("queue begins %v, want waiting-1 then newcomer-30, not behind waiting's turns", got)
	}
}

// A build of a higher priority goes before the queued builds of lower
// ones, whatever their turns; builds of one priority keep their turns.
func TestAHigherPriorityGoesFirst(t *testing.T) {
	d := newTestDispatcher()
	for n := 1; n <= 3; n++ {
		d.add(repoBuild("busy", n))
	}
	low := repoBuild("quiet", 4)
	low.Priority = PriorityLow
	d.add(low)
	urgent := repoBuild("busy", 5)
	urgent.Priority = PriorityHigh
	d.add(urgent)
	d.add(repoBuild("other", 6))
	if got := queueIDs(d); !slices.Equal(got, []string{"busy-5", "busy-1", "other-6", "busy-2", "busy-3", "quiet-4"}) {
		t.Errorf("queue %v, want the high one first, the low one last, the normal ones in turns", got)
	}
}

// With builds of several priorities queued, a newcomer still joins the
// turn being served: the lowest turn queued, whatever its priority.
func TestANewcomerJoinsTheTurnBeingServedAmongPriorities(t *testing.T) {
	d := servedPastWaiting(t)
	// The served repository's next build, high and waiting for a label,
	// has a late turn: it is first in the queue, yet not the turn served.
	high := repoBuild("served", 25)
	high.Priority, high.Labels = PriorityHigh, linux
	d.add(high)
	d.add(repoBuild("newcomer", 30))
	if got := queueIDs(d)[:3]; !slices.Equal(got, []string{"served-25", "waiting-1", "newcomer-30"}) {
		t.Errorf("queue begins %v, want served-25, waiting-1, newcomer-30", got)
	}
}

// servedPastWaiting is a dispatcher whose queue holds three builds of
// "waiting" that need a label no agent has, after ten builds of "served"
// were served one by one past them.
func servedPastWaiting(t *testing.T) *dispatcher {
	t.Helper()
	d := newTestDispatcher()
	for n := 1; n <= 3; n++ {
		b := repoBuild("waiting", n)
		b.Labels = linux
		d.add(b)
	}
	connectAgent(t, d, "a1", 20, nil)
	for n := 10; n < 20; n++ {
		d.add(repoBuild("served", n))
		if placed, _ := d.pass(); len(placed) != 1 {
			t.Fatalf("served-%d was not placed: %v", n, placedIDs(placed))
		}
	}
	return d
}
