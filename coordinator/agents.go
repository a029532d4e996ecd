package coordinator

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// agentRegistry is the fleet as this process sees it: the connected
// agents, the lost ones within their grace, the removed ones, the builds
// each holds and the room each has for more (its agentRoom, which
// placement reads). Its lock is a leaf: taken under the dispatcher's, or
// alone, and no other lock is taken under it.
type agentRegistry struct {
	now func() time.Time

	mu    sync.Mutex
	conns map[string]*agentConn // connected, by agent id
	// lost are the agents whose stream ended while they held builds, with
	// the connection that ended, until they come back or their grace is
	// over (recovery.go).
	lost map[string]*agentConn
	// removed are the agents removed (agents rm) while this process ran:
	// a Hello of theirs admitted at the same moment is refused here.
	removed map[string]bool
	// holds are the attempts leased to each agent, by agent then build id,
	// whether it is connected or not: a heartbeat counts its agent's.
	holds map[string]map[string]hold
	// lastBusy is when each agent last gave back its last attempt: the
	// pool scaler measures idle time from it.
	lastBusy map[string]time.Time
	rooms    agentRooms
}

// hold is an attempt leased to an agent, and the room it takes there.
type hold struct {
	attempt int
	need    Capacity
}

// attemptRef names one attempt of a build.
type attemptRef struct {
	build   string
	attempt int
}

func newAgentRegistry(now func() time.Time) *agentRegistry {
	return &agentRegistry{now: now, conns: map[string]*agentConn{}, lost: map[string]*agentConn{}, removed: map[string]bool{},
		holds: map[string]map[string]hold{}, lastBusy: map[string]time.Time{}, rooms: newAgentRooms()}
}

// connect makes conn its agent's connection, ending an older one. It
// returns the attempts leased to the agent that it does not hold (held:
// build id to attempt, its hello's list): it lost them in a restart. A
// removed agent is refused (errRemoved).
func (r *agentRegistry) connect(conn *agentConn, held map[string]int) ([]attemptRef, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed[conn.id] {
		return nil, errRemoved
	}
	delete(r.lost, conn.id)
	lost := r.leasedNotHeldLocked(conn.id, held)
	old, ok := r.conns[conn.id]
	if ok {
		close(old.gone)
	}
	r.conns[conn.id] = conn
	r.rooms.add(conn.room)
	if ok {
		r.rooms.remove(old.room)
	}
	return lost, nil
}

// disconnect lets go of conn, if it is still its agent's connection. It
// says when the agent was last seen, and whether it is lost with builds:
// then its grace starts (graceOver ends it).
func (r *agentRegistry) disconnect(conn *agentConn) (seen time.Time, lostWithBuilds bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conns[conn.id] == conn {
		delete(r.conns, conn.id)
		close(conn.gone)
		r.rooms.remove(conn.room)
		if len(r.holds[conn.id]) > 0 {
			r.lost[conn.id] = conn
			lostWithBuilds = true
		}
	}
	return conn.seen, lostWithBuilds
}

// graceOver ends the grace that conn's end started, unless its agent came
// back since (or was lost again: a later grace). It returns the attempts
// leased to the agent, to be queued again.
func (r *agentRegistry) graceOver(conn *agentConn) ([]attemptRef, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost[conn.id] != conn {
		return nil, false
	}
	delete(r.lost, conn.id)
	return r.leasedNotHeldLocked(conn.id, nil), true
}

// leasedNotHeldLocked lists the attempts leased to agent that are not in
// held.
func (r *agentRegistry) leasedNotHeldLocked(agent string, held map[string]int) []attemptRef {
	var out []attemptRef
	for id, h := range r.holds[agent] {
		if a, ok := held[id]; !ok || a != h.attempt {
			out = append(out, attemptRef{id, h.attempt})
		}
	}
	return out
}

// connected returns the agent's connection, nil when it is not connected.
func (r *agentRegistry) connected(id string) *agentConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns[id]
}

// remove marks the agent removed, and returns its connection, if any: a
// Hello admitted at the same moment either finds it marked or is found
// connected.
func (r *agentRegistry) remove(id string) *agentConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed[id] = true
	return r.conns[id]
}

// heartbeat takes in what an agent says it has free and holds (build id
// to attempt), and whether it drains. Attempts sent after the agent wrote
// it are not in it: their room is taken all the same.
func (r *agentRegistry) heartbeat(conn *agentConn, free Capacity, held map[string]int, draining bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	room := conn.room
	room.free = Capacity{free.MilliCPUs - room.placing.MilliCPUs, free.Memory - room.placing.Memory}
	for id, h := range r.holds[conn.id] {
		if a, ok := held[id]; !ok || a != h.attempt {
			room.free.MilliCPUs -= h.need.MilliCPUs
			room.free.Memory -= h.need.Memory
		}
	}
	room.draining = draining
	conn.seen = r.now()
	r.rooms.changed(room)
}

// cordon sets whether a connected agent is cordoned; it says whether the
// agent is connected.
func (r *agentRegistry) cordon(id string, cordoned bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	conn, ok := r.conns[id]
	if ok {
		conn.room.cordoned = cordoned
		r.rooms.changed(conn.room)
	}
	return ok
}

// drain marks a connected agent draining and returns its connection (nil
// when it is not connected).
func (r *agentRegistry) drain(id string) *agentConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	conn, ok := r.conns[id]
	if ok {
		conn.room.draining = true
		r.rooms.changed(conn.room)
	}
	return conn
}

// reorder puts every agent's room right among the ready ones, in case a
// change did not.
func (r *agentRegistry) reorder() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rooms.reorder()
}

// roomVersion moves at every change that may give a build room.
func (r *agentRegistry) roomVersion() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rooms.version
}

// assignment is a queued build placed on an agent, to be stored running
// there and sent.
type assignment struct {
	build *Build
	conn  *agentConn
}

// place places the queued builds (place) and returns those placed, with
// their agent's connection, and those that wait, in order, with why.
func (r *agentRegistry) place(queue []*Build, limits *repoLimits) (placed []assignment, waiting []placement) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range place(queue, &r.rooms, limits) {
		if p.agent == "" {
			waiting = append(waiting, p)
			continue
		}
		placed = append(placed, assignment{p.build, r.conns[p.agent]})
	}
	return placed, waiting
}

// placeOne places one build and returns its agent's connection (nil: no
// agent can take it now).
func (r *agentRegistry) placeOne(b *Build) *agentConn {
	r.mu.Lock()
	defer r.mu.Unlock()
	room, _ := r.rooms.take(b)
	if room == nil {
		return nil
	}
	return r.conns[room.agent]
}

// unplace gives back the room of a build placed on conn that was not sent
// after all (its store write failed).
func (r *agentRegistry) unplace(conn *agentConn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	conn.room.placed()
	// Only to the connection that gave it: an agent that reconnected since
	// has a room of its own, which never gave this build's room up.
	if r.conns[conn.id] == conn {
		r.giveBackLocked(conn.id)
	}
}

// leased makes a build placed on conn a hold of its agent's, now that its
// attempt is leased there: from here on heartbeats account for it.
//
// The connection may have ended since the build was placed on it. If its
// end found no build to wait for, it is now lost with this one (orphaned:
// the caller starts its grace); if the agent is connected again on
// another stream, that stream never heard of the build (restarted: the
// caller queues it again at once).
func (r *agentRegistry) leased(conn *agentConn, build string, attempt int) (orphaned, restarted bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	conn.room.placed()
	r.holdLocked(conn.id, build, hold{attempt, conn.room.need})
	switch current := r.conns[conn.id]; {
	case current == conn || r.lost[conn.id] == conn:
		return false, false // connected, or lost with a grace running
	case current != nil:
		return false, true
	}
	r.lost[conn.id] = conn
	return true, false
}

// load makes an attempt found leased at start a hold of its agent's.
// forgetHolds drops every agent's holds and lost connections: a
// coordinator that begins to lead takes the holds up again from the store
// (leadership.go), and its agents connect anew.
func (r *agentRegistry) forgetHolds() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.holds)
	clear(r.lost)
}

func (r *agentRegistry) load(agent, build string, h hold) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holdLocked(agent, build, h)
}

func (r *agentRegistry) holdLocked(agent, build string, h hold) {
	if r.holds[agent] == nil {
		r.holds[agent] = map[string]hold{}
	}
	r.holds[agent][build] = h
}

// release lets go of an attempt that ended or was handed back, and gives
// its room back to its agent: until the agent's next heartbeat says what
// it has free, it takes that much more.
func (r *agentRegistry) release(agent, build string, attempt int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unholdLocked(agent, build, attempt) {
		r.giveBackLocked(agent)
	}
}

// drop lets go of an attempt sent back to the queue (its agent lost, or
// its lease expired) without giving its room back: the agent says what it
// has once it is back.
func (r *agentRegistry) drop(agent, build string, attempt int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unholdLocked(agent, build, attempt)
}

func (r *agentRegistry) unholdLocked(agent, build string, attempt int) bool {
	if h, ok := r.holds[agent][build]; !ok || h.attempt != attempt {
		return false
	}
	if delete(r.holds[agent], build); len(r.holds[agent]) == 0 {
		delete(r.holds, agent)
		r.lastBusy[agent] = r.now()
	}
	return true
}

func (r *agentRegistry) giveBackLocked(agent string) {
	if conn, ok := r.conns[agent]; ok {
		conn.room.giveBack()
		r.rooms.changed(conn.room)
	}
}

// agentState is a connected agent as people and the pool's scaler see it.
type agentState struct {
	id, name, version, instance string
	capacity, free              Capacity
	cordoned, draining, pauses  bool
	connected, seen             time.Time
	// idleSince is when it last gave back its last build, or connected.
	idleSince time.Time
	builds    []string // the builds it holds
}

// state is the agent's state, if it is connected.
func (r *agentRegistry) state(id string) (agentState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	conn, ok := r.conns[id]
	if !ok {
		return agentState{}, false
	}
	return r.stateLocked(conn), true
}

// states are the connected agents' states, in no order.
func (r *agentRegistry) states() []agentState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]agentState, 0, len(r.conns))
	for _, conn := range r.conns {
		out = append(out, r.stateLocked(conn))
	}
	return out
}

func (r *agentRegistry) stateLocked(conn *agentConn) agentState {
	room := conn.room
	s := agentState{id: conn.id, name: conn.name, version: conn.version, instance: conn.instance,
		capacity: room.capacity, free: room.free, cordoned: room.cordoned, draining: room.draining, pauses: conn.pauses,
		connected: conn.connected, seen: conn.seen, idleSince: conn.connected}
	if last, ok := r.lastBusy[conn.id]; ok && last.After(s.idleSince) {
		s.idleSince = last
	}
	if holds := r.holds[conn.id]; len(holds) > 0 {
		s.builds = slices.Collect(maps.Keys(holds))
	}
	return s
}

// used is the capacity taken, between none and all of it.
func (s agentState) used() Capacity {
	return Capacity{
		MilliCPUs: min(max(s.capacity.MilliCPUs-s.free.MilliCPUs, 0), s.capacity.MilliCPUs),
		Memory:    min(max(s.capacity.Memory-s.free.Memory, 0), s.capacity.Memory),
	}
}
