package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/monkeyci/monkeyci/coordinator/leader"
	"github.com/monkeyci/monkeyci/coordinator/tlsca"
	"github.com/monkeyci/monkeyci/proto/fleet"
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
	leader  *leaderClient
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
func (e *election) leaderAddr() string {
	if e.elector == nil { // not started yet
		return ""
	}
	return e.elector.Role().Leader.GRPC
}

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

// leaderClient is the leader's admin API as a standby calls it: with the
// admin token, over TLS trusting the data dir's CA (which the
// coordinators share), redialed when another coordinator leads.
type leaderClient struct {
	election *election
	tls      bool
	caFile   string
	token    string

	mu   sync.Mutex
	addr string
	conn *grpc.ClientConn
}

func (l *leaderClient) admin(context.Context) (fleet.AdminClient, error) {
	addr := l.election.leaderAddr()
	if addr == "" || addr == l.election.me.GRPC {
		return nil, errors.New("no other coordinator leads now")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil || l.addr != addr {
		if old := l.conn; old != nil {
			// Calls under way on it may finish first.
			time.AfterFunc(time.Minute, func() { old.Close() })
		}
		creds := insecure.NewCredentials()
		if l.tls {
			host, _, _ := net.SplitHostPort(addr)
			tc, err := tlsca.ClientConfig(l.caFile, host)
			if err != nil {
				return nil, err
			}
			creds = credentials.NewTLS(tc)
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithPerRPCCredentials(bearer(l.token)))
		if err != nil {
			return nil, err
		}
		l.addr, l.conn = addr, conn
	}
	return fleet.NewAdminClient(l.conn), nil
}

func (l *leaderClient) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}

// bearer sends a token with each call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
