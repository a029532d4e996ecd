package coordinator

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func testConn(id string, builds int64) *agentConn {
	conn := newAgentConn(id)
	conn.room = newAgentRoom(id, nil, Capacity{MilliCPUs: builds * oneBuild.MilliCPUs, Memory: builds * oneBuild.Memory}, oneBuild)
	return conn
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func freeBuilds(t *testing.T, r *agentRegistry, id string) int64 {
	t.Helper()
	s, ok := r.state(id)
	if !ok {
		t.Fatalf("agent %s is not connected", id)
	}
	return s.free.MilliCPUs / oneBuild.MilliCPUs
}

// A heartbeat written before an assignment reached the agent does not
// free its room: neither while the build is being placed nor once its
// lease is set. Once the agent lists it, the agent's own count holds.
func TestAHeartbeatCountsTheRoomOfBuildsItDoesNotList(t *testing.T) {
	r := newAgentRegistry(time.Now)
	conn := testConn("a1", 4)
	if _, err := r.connect(conn, nil); err != nil {
		t.Fatal(err)
	}
	all := oneBuild.MilliCPUs * 4
	placed := r.placeOne(&Build{ID: "b1"})
	if placed != conn || freeBuilds(t, r, "a1") != 3 {
		t.Fatalf("placed on %v, %d builds free; want a1, 3", placed, freeBuilds(t, r, "a1"))
	}
	heartbeat := func(held map[string]int) {
		r.heartbeat(conn, Capacity{MilliCPUs: all, Memory: oneBuild.Memory * 4}, held, false)
	}
	heartbeat(nil) // written before the assignment: all free
	if got := freeBuilds(t, r, "a1"); got != 3 {
		t.Errorf("while placing: %d builds free, want 3", got)
	}
	r.leased(conn, "b1", 1)
	heartbeat(nil)
	if got := freeBuilds(t, r, "a1"); got != 3 {
		t.Errorf("leased, not listed: %d builds free, want 3", got)
	}
	heartbeat(map[string]int{"b1": 2}) // another attempt
	if got := freeBuilds(t, r, "a1"); got != 3 {
		t.Errorf("another attempt listed: %d builds free, want 3", got)
	}
	r.heartbeat(conn, Capacity{MilliCPUs: all - oneBuild.MilliCPUs, Memory: oneBuild.Memory * 3}, map[string]int{"b1": 1}, false)
	if got := freeBuilds(t, r, "a1"); got != 3 {
		t.Errorf("listed: %d builds free, want the agent's 3", got)
	}
}

// An ended attempt gives its room back at once (never more than the
// agent has); one sent back to the queue leaves it to the agent to say.
func TestAnEndedAttemptGivesItsRoomBack(t *testing.T) {
	clock := &fakeClock{time.Unix(1000, 0)}
	r := newAgentRegistry(clock.now)
	conn := testConn("a1", 2)
	if _, err := r.connect(conn, nil); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b1", "b2"} {
		if r.placeOne(&Build{ID: id}) != conn {
			t.Fatalf("%s not placed", id)
		}
		r.leased(conn, id, 1)
	}
	if got := freeBuilds(t, r, "a1"); got != 0 {
		t.Fatalf("%d builds free, want 0", got)
	}
	r.release("a1", "b1", 2) // another attempt: nothing
	r.drop("a1", "b2", 1)
	if got := freeBuilds(t, r, "a1"); got != 0 {
		t.Errorf("after a stale release and a drop: %d builds free, want 0", got)
	}
	clock.t = clock.t.Add(time.Minute)
	r.release("a1", "b1", 1)
	r.release("a1", "b1", 1) // twice: once
	s, _ := r.state("a1")
	if s.free.MilliCPUs != oneBuild.MilliCPUs || len(s.builds) != 0 || !s.idleSince.Equal(clock.t) {
		t.Errorf("after the end: %+v; want one build free, none held, idle since now", s)
	}

	if r.placeOne(&Build{ID: "b3"}) != conn {
		t.Fatal("b3 not placed")
	}
	r.unplace(conn) // its store write failed
	if got := freeBuilds(t, r, "a1"); got != 1 {
		t.Errorf("after an unplaced build: %d builds free, want 1", got)
	}
}

// A connection says which leased attempts its agent lost; a newer one
// ends the older; a removed agent is refused.
func TestAConnectionSaysWhatItsAgentLost(t *testing.T) {
	r := newAgentRegistry(time.Now)
	r.load("a1", "b1", hold{1, oneBuild})
	r.load("a1", "b2", hold{3, oneBuild})
	r.load("a2", "b3", hold{1, oneBuild})
	first := testConn("a1", 4)
	lost, err := r.connect(first, map[string]int{"b1": 1, "b2": 2})
	if err != nil {
		t.Fatal(err)
	}
	if want := []attemptRef{{"b2", 3}}; !slices.Equal(lost, want) {
		t.Errorf("lost %v, want %v", lost, want)
	}
	second := testConn("a1", 4)
	if _, err := r.connect(second, map[string]int{"b1": 1, "b2": 3}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.gone:
	default:
		t.Error("the older connection was not ended")
	}
	if r.connected("a1") != second {
		t.Error("the newer connection is not the agent's")
	}
	if _, lostWithBuilds := r.disconnect(first); lostWithBuilds || r.connected("a1") != second {
		t.Error("ending the older connection let go of the newer")
	}

	if r.remove("a3") != nil {
		t.Error("a3 is not connected, yet remove returned a connection")
	}
	if _, err := r.connect(testConn("a3", 1), nil); !errors.Is(err, errRemoved) {
		t.Errorf("a removed agent connected: %v", err)
	}
}

// An agent whose stream ends with builds is lost for a grace: unless it
// comes back, its builds are queued again when the grace is over.
func TestALostAgentsBuildsAreItsUntilTheGraceIsOver(t *testing.T) {
	r := newAgentRegistry(time.Now)
	idle := testConn("idle", 1)
	if _, err := r.connect(idle, nil); err != nil {
		t.Fatal(err)
	}
	if _, lost := r.disconnect(idle); lost {
		t.Error("an agent without builds is lost")
	}

	conn := testConn("a1", 2)
	if _, err := r.connect(conn, nil); err != nil {
		t.Fatal(err)
	}
	r.placeOne(&Build{ID: "b1"})
	r.leased(conn, "b1", 1)
	if _, lost := r.disconnect(conn); !lost {
		t.Fatal("an agent with a build is not lost")
	}
	if r.connected("a1") != nil || r.placeOne(&Build{ID: "b2"}) != nil {
		t.Error("a lost agent is still connected, or takes builds")
	}
	back := testConn("a1", 2)
	if _, err := r.connect(back, map[string]int{"b1": 1}); err != nil {
		t.Fatal(err)
	}
	if _, over := r.graceOver(conn); over {
		t.Error("the grace of an agent back within it ended")
	}

	if _, lost := r.disconnect(back); !lost {
		t.Fatal("the agent with a build is not lost again")
	}
	refs, over := r.graceOver(back)
	if want := []attemptRef{{"b1", 1}}; !over || !slices.Equal(refs, want) {
		t.Errorf("grace over: %v %v, want %v", refs, over, want)
	}
	if _, again := r.graceOver(back); again {
		t.Error("a grace ended twice")
	}
}

// Cordoned and draining agents take no builds, and say so; an agent's
// state shows its room and builds.
func TestCordonedAndDrainingAgentsTakeNoBuilds(t *testing.T) {
	r := newAgentRegistry(time.Now)
	conn := testConn("a1", 2)
	if _, err := r.connect(conn, nil); err != nil {
		t.Fatal(err)
	}
	if !r.cordon("a1", true) || r.cordon("nobody", true) {
		t.Fatal("cordon says the wrong agent is connected")
	}
	placed, waiting := r.place([]*Build{{ID: "b1"}}, nil)
	if len(placed) != 0 || len(waiting) != 1 || waiting[0].why != "every agent that could take it is cordoned or draining" {
		t.Errorf("on a cordoned agent: placed %v, waiting %+v", placed, waiting)
	}
	r.cordon("a1", false)
	if placed, _ := r.place([]*Build{{ID: "b1"}}, nil); len(placed) != 1 || placed[0].conn != conn {
		t.Errorf("uncordoned: placed %+v", placed)
	}
	if r.drain("a1") != conn || r.drain("nobody") != nil {
		t.Fatal("drain returned the wrong connection")
	}
	if r.placeOne(&Build{ID: "b2"}) != nil {
		t.Error("a draining agent took a build")
	}
	states := r.states()
	if len(states) != 1 || !states[0].draining || states[0].cordoned || states[0].free.MilliCPUs != oneBuild.MilliCPUs ||
		states[0].used() != oneBuild {
		t.Errorf("states %+v", states)
	}
	// A heartbeat says whether the agent drains.
	r.heartbeat(conn, conn.room.capacity, nil, false)
	if r.placeOne(&Build{ID: "b2"}) != conn {
		t.Error("an agent no longer draining took no build")
	}
}

// A build whose lease starts after its agent's stream ended is not left to
// its lease: an agent gone with nothing else to wait for is lost with it
// (its grace starts), one back on another stream never heard of it (it is
// queued again at once), and one lost already waits out the grace running.
func TestALeaseStartedOnAnEndedStreamIsNotLeftToItsLease(t *testing.T) {
	for _, c := range []struct {
		name                string
		before              func(r *agentRegistry, conn *agentConn)
		orphaned, restarted bool
	}{
		{"still connected", func(*agentRegistry, *agentConn) {}, false, false},
		{"gone with nothing held", func(r *agentRegistry, conn *agentConn) { r.disconnect(conn) }, true, false},
		{"gone with another build held", func(r *agentRegistry, conn *agentConn) {
			r.leased(conn, "earlier", 1)
			r.disconnect(conn)
		}, false, false},
		{"back on another stream", func(r *agentRegistry, conn *agentConn) {
			r.disconnect(conn)
			if _, err := r.connect(testConn("a1", 4), nil); err != nil {
				t.Fatal(err)
			}
		}, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newAgentRegistry(time.Now)
			conn := testConn("a1", 4)
			if _, err := r.connect(conn, nil); err != nil {
				t.Fatal(err)
			}
			if r.placeOne(&Build{ID: "b1"}) != conn {
				t.Fatal("not placed")
			}
			c.before(r, conn)
			orphaned, restarted := r.leased(conn, "b1", 1)
			if orphaned != c.orphaned || restarted != c.restarted {
				t.Errorf("leased = orphaned %v, restarted %v; want %v, %v", orphaned, restarted, c.orphaned, c.restarted)
			}
			if c.orphaned {
				refs, lost := r.graceOver(conn)
				if !lost || !slices.Contains(refs, attemptRef{"b1", 1}) {
					t.Errorf("at the grace's end: %v, %v; want b1 queued again", refs, lost)
				}
			}
		})
	}
}
