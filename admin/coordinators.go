package admin

import (
	"fmt"
	"io"
	"time"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// CoordinatorJSON is a coordinator in -o json.
type CoordinatorJSON struct {
	ID      string     `json:"id"`
	Role    string     `json:"role"` // leader, standby or gone (not seen within the role's lease)
	Term    int64      `json:"term,omitempty"`
	GRPC    string     `json:"grpc"`
	HTTP    string     `json:"http"`
	Version string     `json:"version"`
	Started *time.Time `json:"started"`
	Seen    *time.Time `json:"seen"`
	Self    bool       `json:"self"`
}

func role(c *fleet.CoordinatorInfo) string {
	switch {
	case c.GetLeader():
		return "leader"
	case c.GetGone():
		return "gone"
	}
	return "standby"
}

// Coordinators are coordinators in -o json.
func Coordinators(cs []*fleet.CoordinatorInfo) []CoordinatorJSON {
	return each(cs, func(c *fleet.CoordinatorInfo) CoordinatorJSON {
		return CoordinatorJSON{ID: c.GetId(), Role: role(c), Term: c.GetTerm(), GRPC: c.GetGrpc(), HTTP: c.GetHttp(),
			Version: c.GetVersion(), Started: TimeOf(c.GetStarted()), Seen: TimeOf(c.GetSeen()), Self: c.GetSelf()}
	})
}

// CoordinatorsTable writes coordinators as a table: ID ROLE GRPC HTTP
// VERSION STARTED SEEN, the one that answered marked with a star.
func CoordinatorsTable(w io.Writer, cs []*fleet.CoordinatorInfo, now time.Time) error {
	tw := newTable(w)
	row(tw, "ID", "ROLE", "GRPC", "HTTP", "VERSION", "STARTED", "SEEN")
	for _, c := range cs {
		id, r := cell(c.GetId()), role(c)
		if c.GetSelf() {
			id += " *"
		}
		if c.GetLeader() && c.GetTerm() > 0 {
			r = fmt.Sprintf("leader (term %d)", c.GetTerm())
		}
		row(tw, id, r, cell(c.GetGrpc()), cell(c.GetHttp()), cell(c.GetVersion()), stamp(c.GetStarted(), now), stamp(c.GetSeen(), now))
	}
	return tw.Flush()
}
