// Package link is an agent's link to the coordinator: it joins the fleet,
// runs the builds it is assigned through the runner, renews their leases,
// and reports their events and logs until the coordinator has stored them,
// across reconnects and coordinator restarts.
package link

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Config is what a Link needs.
type Config struct {
	// Coordinator is host:port of the coordinator's gRPC listener, or of
	// each of the coordinators sharing a database, comma-separated.
	Coordinator string
	TLS         *tls.Config // nil: plaintext (loopback tests only)
	JoinToken   string
	Name        string
	// Instance is the pool instance the agent runs on, if a pool made it.
	Instance string
	Labels   map[string]string
	Version  string
	Runner   *agent.Runner
	Ledger   *agent.Ledger
	// StateDir keeps the agent's identity, the sources it fetches and a
	// mirror of each repository (mirrors/).
	StateDir string
	// MirrorSize bounds mirrors/: past it the least recently used go
	// (0: no bound).
	MirrorSize int64
	// Fetch checks out a source into dir (default: by way of a mirror,
	// with the git program, or go-git without it). Overlay, if set,
	// says, before the fetch, whether a build's workspace is to lie over
	// what Fetch leaves rather than copy it (agent.BuildSpec.Snapshot):
	// by default, with a mirror, unless the repository's tree is known to
	// be small.
	Fetch   func(ctx context.Context, src source.Source, dir string) (string, error)
	Overlay func(src source.Source) bool
	Logger  hclog.Logger
	// Joined, when set, is told the agent's id after its first welcome,
	// and again whenever it joins as a new agent.
	Joined func(id string)
	// HTTP fetches and uploads archives at the URLs the coordinator hands
	// out (default http.DefaultClient).
	HTTP *http.Client
}

// srcPattern names the folders of the sources the agent fetches, in its
// state dir.
const srcPattern = "src-*"

// RefusedError ends Run: the coordinator refused the agent's token, and
// trying again cannot help. It says what to do.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

// Link runs one agent.
type Link struct {
	cfg Config
	log hclog.Logger
	box *outbox

	mu       sync.Mutex
	builds   map[string]*running
	draining bool
	changed  chan struct{} // closed and replaced when builds or draining change
	id       string
	token    string
	// calls is the connection of calls outside the stream (blobs.go),
	// made at the first; Run closes it, and so does a move to another
	// coordinator.
	calls *grpc.ClientConn
	// at is the coordinator talked to: one of addrs, or the leader a
	// standby named (leader.go). next is the index in addrs of the last
	// one tried (used by Run alone).
	at     string
	addrs  []string
	next   int
	joined bool // a session of this process was welcomed
	// runs counts build goroutines: Run waits for them, so a canceled
	// agent has removed its builds' containers before it returns.
	runs sync.WaitGroup
}

// New makes a link; Run connects it.
func New(cfg Config) (*Link, error) {
	if cfg.Runner == nil || cfg.Ledger == nil || cfg.StateDir == "" {
		return nil, errors.New("link: a runner, a ledger and a state dir are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Fetch == nil {
		// A mirror per repository in the state dir, with the git program,
		// or go-git without it (the docker pool's minimal image), whose
		// checkouts are no worktrees to lay a workspace over.
		m := source.NewMirrors(filepath.Join(cfg.StateDir, "mirrors"), cfg.Logger.Named("source"))
		m.MaxBytes = cfg.MirrorSize
		cfg.Fetch = m.Fetch
		if m.Git != "" {
			cfg.Overlay = func(src source.Source) bool { return !m.SmallTree(src.URL) }
		}
	}
	if cfg.HTTP == nil {
		cfg.HTTP = http.DefaultClient
	}
	l := &Link{cfg: cfg, log: cfg.Logger, box: newOutbox(), builds: map[string]*running{}, changed: make(chan struct{}),
		addrs: addresses(cfg.Coordinator)}
	if len(l.addrs) == 0 {
		return nil, errors.New("link: no coordinator address")
	}
	l.at = l.addrs[0]
	if err := l.loadIdentity(); err != nil {
		return nil, err
	}
	// Sources a killed run of the agent was fetching (run): it holds none yet.
	left, _ := filepath.Glob(filepath.Join(cfg.StateDir, srcPattern))
	for _, dir := range left {
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("removing a leftover source: %w", err)
		}
	}
	return l, nil
}

// Drain stops taking builds; Run returns once the running ones have ended
// and everything about them is stored.
func (l *Link) Drain() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.draining {
		l.draining = true
		l.changedLocked()
		// Tell the coordinator now, not at the next heartbeat.
		go func() { l.box.push(l.heartbeat()) }()
	}
}

func (l *Link) changedLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// finished reports whether a draining agent has nothing left to do.
func (l *Link) finished() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.draining && len(l.builds) == 0 && l.box.empty()
}

// Run keeps the agent connected until ctx ends, or until it has drained.
// Builds run on ctx: canceling it cancels them.
func (l *Link) Run(ctx context.Context) error {
	defer l.closeCalls()
	const firstWait = 100 * time.Millisecond
	wait, moved := firstWait, false
	var outage time.Time // since when no session has lasted
	for {
		began := time.Now()
		err := l.session(ctx)
		if l.finished() {
			return nil
		}
		if refused := (*RefusedError)(nil); errors.As(err, &refused) {
			l.runs.Wait()
			return err
		}
		if ctx.Err() != nil {
			l.runs.Wait()
			return ctx.Err()
		}
		if lasted := time.Since(began); lasted > time.Minute {
			wait = firstWait // a session that lasted: not a coordinator that keeps failing
		} else if lasted > 5*time.Second {
			moved = false
		}
		if lasted := time.Since(began); lasted > 5*time.Second || outage.IsZero() {
			outage = time.Now()
		}
		var to *movedError
		switch {
		case errors.As(err, &to) && !moved:
			// Straight to the leader; twice in a row (standbys that name
			// each other in a failover), after a wait.
			l.log.Info("going to the leader", "from", to.from, "to", to.to)
			moved = true
			continue
		default:
			l.nextAddress()
		}
		if len(l.addrs) > 1 && time.Since(outage) < failoverWindow {
			// Several coordinators: one that is gone, or stands by, may
			// mean a failover, and the next one may lead any moment now.
			// Past the window, every coordinator is away: the agents
			// back off as one coordinator's do.
			wait = min(wait, failoverWait)
		}
		moved = false
		l.log.Warn("connection to the coordinator lost; reconnecting", "error", err, "in", wait, "to", l.target())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			l.runs.Wait()
			return ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (l *Link) closeCalls() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls != nil {
		l.calls.Close()
		l.calls = nil
	}
}

// session is one connection, from Hello to its end.
func (l *Link) session(ctx context.Context) error {
	at := l.target()
	conn, err := l.dial(at)
	if err != nil {
		return err
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := fleet.NewFleetClient(conn).Connect(sctx)
	if err != nil {
		return err
	}
	welcome, err := l.join(stream)
	if err != nil {
		return l.followLeader(at, stream.Trailer(), err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		l.box.wake()
		cancel()
		wg.Wait()
	}()
	wg.Go(func() { l.endWhenFinished(sctx, cancel) })
	wg.Go(func() { l.send(stream, stop, cancel) })
	wg.Go(func() { l.heartbeats(sctx, time.Duration(welcome.GetHeartbeatMillis())*time.Millisecond) })
	if err := l.receive(ctx, stream); err != nil {
		return l.followLeader(at, stream.Trailer(), err)
	}
	return nil
}

// failoverWait bounds the wait before the next try when an agent has
// several coordinators' addresses: a failover is over within moments.
const failoverWait = 500 * time.Millisecond

// failoverWindow is how long after its last session an agent with several
// coordinators' addresses keeps its tries failoverWait apart: a failover
// is over well within it (the role's lease is 3 s by default).
const failoverWindow = 30 * time.Second

// How often a quiet connection to the coordinator is pinged, and how long
// an answer may take.
const (
	keepaliveTime    = 5 * time.Second
	keepaliveTimeout = 3 * time.Second
)

// dial makes the connection to the coordinator at addr.
func (l *Link) dial(addr string) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if l.cfg.TLS != nil {
		creds = credentials.NewTLS(l.cfg.TLS)
	}
	return grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		// A coordinator that stops answering (a paused machine) is left
		// for the next within about keepaliveTime+keepaliveTimeout.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		// Log chunks are large (chunkSize): written in fewer syscalls.
		grpc.WithWriteBufferSize(2*chunkSize))
}

// join says Hello on a new stream and keeps the identity the coordinator's
// Welcome gives; the outbox then resends what the coordinator has not
// acknowledged.
func (l *Link) join(stream fleet.Fleet_ConnectClient) (*fleet.Welcome, error) {
	l.mu.Lock()
	id, token := l.id, l.token
	l.mu.Unlock()
	if token == "" {
		token = l.cfg.JoinToken
	}
	total := l.cfg.Ledger.Total()
	hello := &fleet.Hello{
		Protocol: fleet.ProtocolVersion_PROTOCOL_VERSION_1, Name: l.cfg.Name, Id: id, Token: token,
		Labels: l.cfg.Labels, Version: l.cfg.Version, Instance: l.cfg.Instance, Holding: l.box.holding(), Pauses: l.cfg.Runner.Pauses(),
		Capacity: &fleet.Capacity{MilliCpus: total.MilliCPUs, Memory: total.Memory},
	}
	if err := stream.Send(&fleet.AgentMessage{Msg: &fleet.AgentMessage_Hello{Hello: hello}}); err != nil {
		return nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		return nil, l.refused(id, err)
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return nil, errors.New("joining: the coordinator did not answer with a welcome")
	}
	if err := l.saveIdentity(welcome.GetId(), welcome.GetCredential()); err != nil {
		return nil, err
	}
	if l.cfg.Joined != nil && (id == "" || !l.joined) {
		l.cfg.Joined(welcome.GetId())
	}
	l.joined = true
	l.box.rewind()
	return welcome, nil
}

// endWhenFinished ends the session (cancel) once a draining agent is done,
// or returns when the session ends first.
func (l *Link) endWhenFinished(sctx context.Context, cancel context.CancelFunc) {
	for {
		l.mu.Lock()
		changed := l.changed
		l.mu.Unlock()
		if l.finished() {
			cancel()
			return
		}
		select {
		case <-changed:
		case <-sctx.Done():
			return
		}
	}
}

// send is the stream's only sender: it sends what the outbox holds until
// stop, and ends the session (cancel) when a send fails.
func (l *Link) send(stream fleet.Fleet_ConnectClient, stop <-chan struct{}, cancel context.CancelFunc) {
	for m := l.box.next(stop); m != nil; m = l.box.next(stop) {
		if err := stream.Send(m); err != nil {
			cancel()
			return
		}
	}
}

// receive handles the coordinator's messages until the stream breaks, or
// a draining agent is done. Builds run on ctx, not on the session's.
func (l *Link) receive(ctx context.Context, stream fleet.Fleet_ConnectClient) error {
	for {
		if l.finished() {
			return nil
		}
		m, err := stream.Recv()
		if err != nil {
			if l.finished() {
				return nil
			}
			return err
		}
		l.handle(ctx, m)
	}
}

func (l *Link) handle(ctx context.Context, m *fleet.CoordinatorMessage) {
	switch msg := m.GetMsg().(type) {
	case *fleet.CoordinatorMessage_Assign:
		l.start(ctx, msg.Assign)
	case *fleet.CoordinatorMessage_Ack:
		l.box.ack(msg.Ack)
		if msg.Ack.GetDone() {
			l.box.forget(msg.Ack.GetBuild())
		}
	case *fleet.CoordinatorMessage_Cancel:
		l.stop(msg.Cancel.GetBuild())
	case *fleet.CoordinatorMessage_Unblock:
		l.unblock(msg.Unblock)
	case *fleet.CoordinatorMessage_Refuse:
		l.log.Warn("the coordinator refused a report; stopping that attempt", "build", msg.Refuse.GetBuild().GetBuildId(),
			"attempt", msg.Refuse.GetBuild().GetAttempt(), "reason", msg.Refuse.GetReason())
		l.stop(msg.Refuse.GetBuild())
		l.box.forget(msg.Refuse.GetBuild())
	case *fleet.CoordinatorMessage_Drain:
		l.Drain()
	}
}

// heartbeats renew the leases of running attempts and tell the agent's
// free capacity, until ctx ends.
func (l *Link) heartbeats(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		l.box.push(l.heartbeat())
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (l *Link) heartbeat() *fleet.AgentMessage {
	hb := &fleet.Heartbeat{}
	var promised agent.Resources
	script := l.cfg.Runner.Script()
	l.mu.Lock()
	hb.Draining = l.draining
	for _, r := range l.builds {
		hb.Running = append(hb.Running, r.ba)
		if !r.reserved {
			promised.MilliCPUs += script.MilliCPUs
			promised.Memory += script.Memory
		}
	}
	l.mu.Unlock()
	// Read after the builds: a build seen unreserved above may reserve
	// meanwhile and be counted twice (too little room, for a heartbeat),
	// never not at all.
	total, used := l.cfg.Ledger.Total(), l.cfg.Ledger.Used()
	hb.Free = &fleet.Capacity{MilliCpus: total.MilliCPUs - used.MilliCPUs - promised.MilliCPUs, Memory: total.Memory - used.Memory - promised.Memory}
	return &fleet.AgentMessage{Msg: &fleet.AgentMessage_Heartbeat{Heartbeat: hb}}
}
