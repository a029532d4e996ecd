package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/leader"
)

// elected is what a store shared by several coordinators offers: the
// leader's role (package leader) and the fencing of a leader's changes.
type elected interface {
	leader.Lease
	Elected()
}

// election is this coordinator's part in choosing the leader (nil for a
// coordinator alone on its SQLite file: it always leads).
type election struct {
	elector *leader.Elector
	lease   leader.Lease
	me      leader.Member
	done    chan struct{} // closed when the elector has stopped
}

// newMemberID names this process among the coordinators: a new one each
// start, so that a restarted coordinator never takes its old term for its
// own.
func newMemberID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// run runs the elector until ctx ends: lead is run while this
// coordinator leads.
func (e *election) run(ctx context.Context) {
	go func() {
		defer close(e.done)
		e.elector.Run(ctx)
	}()
}

// leaderAddr is the leader's gRPC address as last seen ("" unknown).
func (e *election) leaderAddr() string { return e.elector.Role().Leader.GRPC }

// health is what /healthz says: this coordinator's role.
type health struct {
	Status string `json:"status"`
	ID     string `json:"id,omitempty"`
	Role   string `json:"role"` // "leader" or "standby"
	Term   int64  `json:"term,omitempty"`
	// Leader is the leader's gRPC address, as a standby knows it.
	Leader string `json:"leader,omitempty"`
}

// healthz answers /healthz with the coordinator's role, as JSON: 200
// whichever it is (both serve the dashboard, the API and webhooks).
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	h := health{Status: "ok", Role: "leader"}
	if e := s.election; e != nil {
		role := e.elector.Role()
		h.ID, h.Term, h.Leader = e.me.ID, role.Term, role.Leader.GRPC
		if !role.Leading {
			h.Role = "standby"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(h)
}

// Coordinators lists the coordinators sharing the database, seen in the
// last minute (just this one when it is alone).
func (s *Server) Coordinators(ctx context.Context) ([]leader.Member, error) {
	if s.election == nil {
		return []leader.Member{{GRPC: s.GRPCAddr, HTTP: s.HTTPAddr, Leader: true}}, nil
	}
	return s.election.lease.Members(ctx, time.Minute)
}
