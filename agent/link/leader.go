package link

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Several coordinators may share one database: one leads and takes the
// agents, the others stand by and refuse an agent's stream, naming the
// leader in the trailer leaderTrailer. An agent is given every
// coordinator's address (--coordinator a:7433,b:7433): it goes where a
// standby sends it, and when the one it talks to goes away it tries the
// next address. What was not acknowledged is sent again, as after any
// reconnection.

// leaderTrailer is coordinator.LeaderTrailer (the agent does not import
// the coordinator).
const leaderTrailer = "monkeyci-leader"

// addresses splits --coordinator into its addresses.
func addresses(coordinator string) []string {
	var out []string
	for _, a := range strings.Split(coordinator, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// movedError ends a session with a standby that named the leader.
type movedError struct{ from, to string }

func (e *movedError) Error() string {
	return fmt.Sprintf("the coordinator at %s stands by: the leader is at %s", e.from, e.to)
}

// followLeader turns a standby's refusal whose trailer names the leader
// into a movedError, and goes there next.
func (l *Link) followLeader(from string, trailer metadata.MD, err error) error {
	if status.Code(err) != codes.Unavailable {
		return err
	}
	to := trailer.Get(leaderTrailer)
	if len(to) == 0 || to[0] == "" || to[0] == from {
		return err
	}
	l.moveTo(to[0])
	return &movedError{from: from, to: to[0]}
}

// target is the coordinator the next session talks to.
func (l *Link) target() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.at
}

// moveTo makes addr the coordinator to talk to; the connection of calls
// outside the stream goes there too.
func (l *Link) moveTo(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at == addr {
		return
	}
	l.at = addr
	if old := l.calls; old != nil {
		// Calls under way on it (an archive's upload) may finish first.
		time.AfterFunc(time.Minute, func() { old.Close() })
		l.calls = nil
	}
}

// nextAddress moves on to the next address given, after the one in use
// failed.
func (l *Link) nextAddress() {
	if len(l.addrs) < 2 {
		return
	}
	l.next = (l.next + 1) % len(l.addrs)
	l.moveTo(l.addrs[l.next])
}
