package coordinator

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func newTestDispatcher() *dispatcher {
	return newDispatcher(newAgentRegistry(time.Now), newLeaseTable())
}

func connectAgent(t *testing.T, d *dispatcher, id string, builds int64, labels map[string]string) *agentConn {
	t.Helper()
	conn := testConn(id, builds)
	conn.room.labels = labels
	if _, err := d.agents.connect(conn, nil); err != nil {
		t.Fatal(err)
	}
	return conn
}

// queuedBuild is build bn, created n seconds after an epoch.
func queuedBuild(n int, labels map[string]string) *Build {
	return &Build{ID: fmt.Sprintf("b%d", n), Created: time.Unix(1_000_000+int64(n), 0), Labels: labels}
}

func mapIDs[T any](xs []T, id func(T) string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

func placedIDs(as []assignment) []string {
	return mapIDs(as, func(a assignment) string { return a.build.ID + "@" + a.conn.id })
}

func reasonIDs(ps []placement) []string {
	return mapIDs(ps, func(p placement) string { return p.build.ID })
}

// A pass places what it can, oldest first; a build left waiting is
// returned when its reason to wait changes, not at every pass.
func TestAPassPlacesWhatItCanAndSaysWhyTheRestWait(t *testing.T) {
	d := newTestDispatcher()
	d.add(queuedBuild(1, linux))
	d.add(queuedBuild(2, nil))
	d.add(queuedBuild(3, nil))
	placed, reasons := d.pass()
	if len(placed) != 0 || !slices.Equal(reasonIDs(reasons), []string{"b1", "b2", "b3"}) {
		t.Fatalf("no agent: placed %v, reasons for %v", placedIDs(placed), reasonIDs(reasons))
	}

	connectAgent(t, d, "plain", 1, nil)
	placed, reasons = d.pass()
	if got := placedIDs(placed); !slices.Equal(got, []string{"b2@plain"}) {
		t.Errorf("placed %v, want b2 on plain", got)
	}
	if got := reasonIDs(reasons); !slices.Equal(got, []string{"b1", "b3"}) {
		t.Errorf("new reasons for %v, want b1 (no linux agent) and b3 (busy)", got)
	}
	if d.queued() != 2 {
		t.Errorf("%d queued, want 2", d.queued())
	}

	placed, reasons = d.pass()
	if len(placed) != 0 || len(reasons) != 0 {
		t.Errorf("nothing changed, yet placed %v and new reasons for %v", placedIDs(placed), reasonIDs(reasons))
	}
	connectAgent(t, d, "linux", 2, linux)
	placed, _ = d.pass()
	if got := placedIDs(placed); !slices.Equal(got, []string{"b1@linux", "b3@linux"}) {
		t.Errorf("once a linux agent connects: placed %v", got)
	}
}

// A pass starts after the builds that found no agent, until an agent
// changes: the builds queued since, and those put back among them, are
// looked at; a cancel among them keeps the count right. (One repository:
// its builds keep their order of arrival, and one put back after its
// attempt goes first.)
func TestAPassStartsAfterTheBuildsThatFoundNoAgent(t *testing.T) {
	d := newTestDispatcher()
	d.add(queuedBuild(1, nil))
	d.add(queuedBuild(3, nil))
	d.add(queuedBuild(5, nil))
	d.pass()
	if queued, _, ok := d.cancel("b3"); !ok || queued == nil || queued.ID != "b3" {
		t.Fatalf("cancel b3: %v %v", queued, ok)
	}
	d.add(queuedBuild(6, nil))
	if _, reasons := d.pass(); !slices.Equal(reasonIDs(reasons), []string{"b6"}) {
		t.Errorf("after a cancel and a new build: new reasons for %v, want b6 alone", reasonIDs(reasons))
	}
	back := queuedBuild(2, nil)
	back.Attempt = 1
	d.requeue(back)
	if _, reasons := d.pass(); !slices.Equal(reasonIDs(reasons), []string{"b2"}) {
		t.Errorf("a build put back: new reasons for %v, want b2", reasonIDs(reasons))
	}
	if got := mapIDs(d.queue, func(b *Build) string { return b.ID }); !slices.Equal(got, []string{"b1", "b2", "b5", "b6"}) {
		t.Errorf("queue %v, want b1, b2, b5, b6", got)
	}
}

// A new build goes to an agent at once only when none waits before it.
func TestANewBuildGoesAtOnceOnlyWhenNoneWaits(t *testing.T) {
	d := newTestDispatcher()
	conn := connectAgent(t, d, "a1", 2, nil)
	if d.placeNow(queuedBuild(1, nil)) != conn {
		t.Error("a build was not placed on an idle agent")
	}
	d.add(queuedBuild(2, linux))
	if d.placeNow(queuedBuild(3, nil)) != nil {
		t.Error("a build went before one queued")
	}
}

// A build handed back is queued again, its attempt ended and its room
// given back; cancel finds a build queued or running.
func TestAHandedBackBuildIsQueuedAgain(t *testing.T) {
	d := newTestDispatcher()
	conn := connectAgent(t, d, "a1", 1, nil)
	b := queuedBuild(1, nil)
	d.add(b)
	placed, _ := d.pass()
	if len(placed) != 1 {
		t.Fatal("not placed")
	}
	b.Attempt = 1
	d.startLease(b.ID, lease{attempt: 1, agent: conn.id}, conn)
	if _, running, ok := d.cancel(b.ID); !ok || running.attempt != 1 || running.agent != "a1" {
		t.Errorf("cancel of a running build: %+v %v", running, ok)
	}
	d.handBack(b, 1)
	if _, ok := d.leases.current(b.ID); ok {
		t.Error("the handed back attempt is still leased")
	}
	if got := freeBuilds(t, d.agents, "a1"); got != 1 {
		t.Errorf("%d builds free on a1, want its room back", got)
	}
	if queued, _, ok := d.cancel(b.ID); !ok || queued != b {
		t.Errorf("cancel of the build handed back: %v %v, want it queued", queued, ok)
	}
	if _, _, ok := d.cancel(b.ID); ok {
		t.Error("a canceled build was found again")
	}
}

// A lease that replaces another lets go of the older one's hold; a lease
// dropped (its agent lost) gives no room back.
func TestLeasesAndTheirAgentsHolds(t *testing.T) {
	d := newTestDispatcher()
	a1 := connectAgent(t, d, "a1", 2, nil)
	a2 := connectAgent(t, d, "a2", 2, nil)
	d.startLease("b1", lease{attempt: 1, agent: "a1"}, a1)
	d.startLease("b1", lease{attempt: 2, agent: "a2"}, a2)
	if s, _ := d.agents.state("a1"); len(s.builds) != 0 {
		t.Errorf("a1 still holds %v", s.builds)
	}
	if s, _ := d.agents.state("a2"); !slices.Equal(s.builds, []string{"b1"}) {
		t.Errorf("a2 holds %v, want b1", s.builds)
	}
	said := Capacity{MilliCPUs: oneBuild.MilliCPUs, Memory: oneBuild.Memory} // b1 runs
	d.agents.heartbeat(a2, said, map[string]int{"b1": 2}, false)
	d.dropLease("b1", 1) // not the current attempt
	if _, ok := d.leases.current("b1"); !ok {
		t.Fatal("a stale drop ended the lease")
	}
	d.dropLease("b1", 2)
	if s, _ := d.agents.state("a2"); len(s.builds) != 0 || s.free != said {
		t.Errorf("after the drop: %+v, want no build held and the room as the agent said", s)
	}
}
