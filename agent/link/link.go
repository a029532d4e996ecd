// Package link is an agent's link to the coordinator: it joins the fleet,
// runs the builds it is assigned through the runner, renews their leases,
// and reports their events and logs until the coordinator has stored them,
// across reconnects and coordinator restarts.
package link

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/logorder"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/fleet"
	"github.com/monkeyci/monkeyci/secret"
)

// Config is what a Link needs.
type Config struct {
	Coordinator string      // host:port of the coordinator's gRPC listener
	TLS         *tls.Config // nil: plaintext (loopback tests only)
	JoinToken   string
	Name        string
	// Instance is the pool instance the agent runs on, if a pool made it.
	Instance string
	Labels   map[string]string
	Version  string
	Runner   *agent.Runner
	Ledger   *agent.Ledger
	// StateDir keeps the agent's identity and the sources it fetches.
	StateDir string
	// Fetch checks out a source into dir (default: source.Fetch).
	Fetch  func(ctx context.Context, src source.Source, dir string) (string, error)
	Logger hclog.Logger
	// Joined, when set, is told the agent's id after its first welcome,
	// and again whenever it joins as a new agent.
	Joined func(id string)
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
	joined   bool // a session of this process was welcomed
	// runs counts build goroutines: Run waits for them, so a canceled
	// agent has removed its builds' containers before it returns.
	runs sync.WaitGroup
}

type running struct {
	ba     *fleet.BuildAttempt
	cancel context.CancelFunc
	// reserved: its script holds its share of the ledger. Until then the
	// heartbeat counts that share as taken, or the coordinator would see
	// room that the build is about to fill and send another.
	reserved bool
}

// New makes a link; Run connects it.
func New(cfg Config) (*Link, error) {
	if cfg.Runner == nil || cfg.Ledger == nil || cfg.StateDir == "" {
		return nil, errors.New("link: a runner, a ledger and a state dir are required")
	}
	if cfg.Fetch == nil {
		cfg.Fetch = source.Fetch
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	l := &Link{cfg: cfg, log: cfg.Logger, box: newOutbox(), builds: map[string]*running{}, changed: make(chan struct{})}
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
	wait := 100 * time.Millisecond
	for {
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
		l.log.Warn("connection to the coordinator lost; reconnecting", "error", err, "in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			l.runs.Wait()
			return ctx.Err()
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// session is one connection, from Hello to its end.
func (l *Link) session(ctx context.Context) error {
	creds := insecure.NewCredentials()
	if l.cfg.TLS != nil {
		creds = credentials.NewTLS(l.cfg.TLS)
	}
	conn, err := grpc.NewClient(l.cfg.Coordinator, grpc.WithTransportCredentials(creds),
		// Log chunks are large (chunkSize): written in fewer syscalls.
		grpc.WithWriteBufferSize(2*chunkSize))
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
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return l.refused(id, err)
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return errors.New("joining: the coordinator did not answer with a welcome")
	}
	if err := l.saveIdentity(welcome.GetId(), welcome.GetCredential()); err != nil {
		return err
	}
	if l.cfg.Joined != nil && (id == "" || !l.joined) {
		l.cfg.Joined(welcome.GetId())
	}
	l.joined = true
	l.box.rewind()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		l.box.wake()
		cancel()
		wg.Wait()
	}()
	wg.Add(3)
	go func() { // ends the session once a draining agent is done
		defer wg.Done()
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
	}()
	go func() { // the stream's only sender
		defer wg.Done()
		for m := l.box.next(stop); m != nil; m = l.box.next(stop) {
			if err := stream.Send(m); err != nil {
				cancel()
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		l.heartbeats(sctx, time.Duration(welcome.GetHeartbeatMillis())*time.Millisecond)
	}()
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

// start runs an assigned attempt in the background.
func (l *Link) start(ctx context.Context, a *fleet.Assign) {
	ba := a.GetBuild()
	l.mu.Lock()
	if _, ok := l.builds[key(ba)]; ok {
		l.mu.Unlock()
		return // a repeated assignment
	}
	if l.draining { // it crossed the drain: hand it back at once
		l.mu.Unlock()
		l.box.push(&fleet.AgentMessage{Msg: &fleet.AgentMessage_Decline{Decline: &fleet.Decline{Build: ba, Reason: "the agent is draining"}}})
		return
	}
	bctx, cancel := context.WithCancel(ctx)
	r := &running{ba: ba, cancel: cancel}
	l.builds[key(ba)] = r
	l.changedLocked()
	l.mu.Unlock()
	l.box.open(ba)
	l.box.push(&fleet.AgentMessage{Msg: &fleet.AgentMessage_Accept{Accept: &fleet.Accept{Build: ba}}})
	l.runs.Add(1)
	go func() {
		defer l.runs.Done()
		defer func() {
			cancel()
			l.mu.Lock()
			delete(l.builds, key(ba))
			l.changedLocked()
			l.mu.Unlock()
			l.box.wake()
		}()
		result, msg, needs := l.run(bctx, a, func() {
			l.mu.Lock()
			r.reserved = true
			l.mu.Unlock()
		})
		l.box.end(ba, result, msg, needs)
	}()
}

// run fetches the source and runs the build; it returns the result, and
// the labels of the agent the build needs when it hands it back.
func (l *Link) run(ctx context.Context, a *fleet.Assign, reserved func()) (events.Result, string, map[string]string) {
	ba := a.GetBuild()
	src := source.Source{URL: a.GetSource().GetUrl(), Branch: a.GetSource().GetBranch(),
		Commit: a.GetSource().GetCommit(), Tag: a.GetSource().GetTag()}
	dir, local, err := source.WorkingTree(src)
	if err != nil {
		return events.Error, err.Error(), nil
	}
	// A working tree's facts are what the assignment says; a fetched
	// source's are read once it is fetched, changed files included.
	facts := &pipeline.Facts{Branch: src.Branch, Tag: src.Tag, Commit: src.Commit}
	spec := agent.BuildSpec{
		ID: specID(ba), Repo: a.GetRepo(), Source: dir, Params: a.GetParams(), Facts: facts,
		Secrets: a.GetSecrets(), Reserved: reserved, Unblockable: true,
		Cache: agent.CacheScope{Scope: a.GetCache().GetScope(), Fallback: a.GetCache().GetFallback()},
	}
	if !local {
		if spec.Source, err = os.MkdirTemp(l.cfg.StateDir, srcPattern); err != nil {
			return events.Error, fmt.Sprintf("making a source directory: %v", err), nil
		}
		defer os.RemoveAll(spec.Source)
		spec.Fetch = func(ctx context.Context) error {
			commit, err := l.cfg.Fetch(ctx, src, spec.Source)
			if err != nil {
				return err
			}
			f, err := source.FactsOf(ctx, spec.Source, src)
			if err != nil {
				// Not worth failing the build: unknown changes make every
				// `when: changed` hold.
				l.log.Warn("the changed files are unknown", "build", ba.GetBuildId(), "error", err)
				f.Commit = commit // FactsOf left the changes unknown
			}
			*facts = f
			return nil
		}
	}
	// The secrets' values, and the credential of the URL fetched, never
	// leave the agent in an event or a log line.
	hidden := source.Credentials(src.URL)
	for _, v := range a.GetSecrets() {
		hidden = append(hidden, v)
	}
	rep := newReporter(l.box, ba, hidden)
	out, err := l.cfg.Runner.Run(ctx, spec, rep)
	rep.flushAll()
	var elsewhere *agent.NeedsAgentError
	if errors.As(err, &elsewhere) {
		return out.Result, rep.text(err.Error()), elsewhere.Labels
	}
	if err != nil {
		return out.Result, rep.text(err.Error()), nil
	}
	return out.Result, "", nil
}

// stop cancels an attempt this agent runs.
func (l *Link) stop(ba *fleet.BuildAttempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r, ok := l.builds[key(ba)]; ok {
		r.cancel()
	}
}

// unblock passes a person's unblock to the attempt it names. One of
// another attempt (stale) or of an attempt already over is ignored: only
// the current attempt's script waits for it.
func (l *Link) unblock(u *fleet.Unblock) {
	l.mu.Lock()
	_, ok := l.builds[key(u.GetBuild())]
	l.mu.Unlock()
	if !ok {
		l.log.Info("ignoring an unblock of an attempt this agent does not run", "build", u.GetBuild().GetBuildId(),
			"attempt", u.GetBuild().GetAttempt(), "job", u.GetJob())
		return
	}
	if err := l.cfg.Runner.Unblock(specID(u.GetBuild()), u.GetJob()); err != nil {
		l.log.Warn("could not unblock a job", "job", u.GetJob(), "error", err)
	}
}

// specID is the runner's id of an attempt: attempts of one build never
// share containers or directories.
func specID(ba *fleet.BuildAttempt) string {
	return ba.GetBuildId() + "-" + strconv.Itoa(int(ba.GetAttempt()))
}

// reporter hands a build's events and output to the outbox, with the
// values of the build's secrets masked: nothing that leaves the agent
// holds them.
type reporter struct {
	box  *outbox
	ba   *fleet.BuildAttempt
	mask *secret.Masker // nil: nothing to mask

	mu      sync.Mutex
	streams map[streamKey]*maskedStream
	command map[string]string // per job: the command running, for the order index
}

// maskedStream is one output stream's masking state; its lock keeps what
// Write passes on and what Flush releases in order.
type maskedStream struct {
	mu sync.Mutex
	s  *secret.Stream
}

func newReporter(box *outbox, ba *fleet.BuildAttempt, hidden []string) *reporter {
	r := &reporter{box: box, ba: ba}
	if len(hidden) > 0 {
		if m := secret.NewMasker(hidden); !m.Empty() {
			r.mask, r.streams = m, map[streamKey]*maskedStream{}
		}
	}
	return r
}

func (r *reporter) Event(e events.Event) {
	e.Build = r.ba.GetBuildId()
	e.Line = r.text(e.Line)
	if e.Job != "" && (e.Type == events.CommandStart || e.Type == events.CommandEnd) {
		r.commandEvent(e)
	}
	if r.mask != nil {
		e.Message = r.text(e.Message)
		// A job's output is all read before its end: release what its
		// streams hold back, so the log is whole before the event.
		switch e.Type {
		case events.JobEnd:
			r.flush(e.Job)
		case events.ScriptEnd:
			r.flush("")
		}
	}
	r.box.event(r.ba, e)
}

// commandEvent keeps which command of the job runs, and marks its start in
// the job's order index. What the masks hold back of the command before is
// released first: its bytes are that command's. The wrapper's events are
// the job's to write: a command that is not an index is no command.
func (r *reporter) commandEvent(e events.Event) {
	r.flush(e.Job)
	cmd := e.Command
	if !logorder.ValidCommand(cmd) || e.Type == events.CommandEnd {
		cmd = ""
	}
	r.mu.Lock()
	if r.command == nil {
		r.command = map[string]string{}
	}
	r.command[e.Job] = cmd
	r.mu.Unlock()
	if cmd != "" {
		r.box.started(r.ba, e.Job, cmd, e.Line)
	}
}

func (r *reporter) Output(job, stream string, data []byte) {
	r.mu.Lock()
	cmd := r.command[job]
	r.mu.Unlock()
	if r.mask == nil {
		r.box.output(r.ba, job, cmd, stream, data)
		return
	}
	k := streamKey{job, stream}
	r.mu.Lock()
	ms := r.streams[k]
	if ms == nil {
		ms = &maskedStream{s: r.mask.Stream()}
		r.streams[k] = ms
	}
	r.mu.Unlock()
	ms.mu.Lock()
	defer ms.mu.Unlock()
	if out := ms.s.Write(data); len(out) > 0 {
		r.box.output(r.ba, job, cmd, stream, out)
	}
}

// text masks a message.
func (r *reporter) text(s string) string {
	if r.mask == nil {
		return s
	}
	return r.mask.String(s)
}

// flush releases what the streams of job (all jobs: flushAll) hold back.
func (r *reporter) flush(job string) { r.flushWhere(func(k streamKey) bool { return k.job == job }) }

func (r *reporter) flushAll() { r.flushWhere(func(streamKey) bool { return true }) }

func (r *reporter) flushWhere(match func(streamKey) bool) {
	if r.mask == nil {
		return
	}
	r.mu.Lock()
	flush := map[streamKey]*maskedStream{}
	for k, ms := range r.streams {
		if match(k) {
			flush[k] = ms
		}
	}
	r.mu.Unlock()
	for k, ms := range flush {
		ms.mu.Lock()
		if out := ms.s.Flush(); len(out) > 0 {
			r.mu.Lock()
			cmd := r.command[k.job]
			r.mu.Unlock()
			r.box.output(r.ba, k.job, cmd, k.stream, out)
		}
		ms.mu.Unlock()
	}
}

// identity is what the agent keeps across restarts.
type identity struct {
	ID         string `json:"id"`
	Credential string `json:"credential"`
}

func (l *Link) identityFile() string { return IdentityFile(l.cfg.StateDir) }

func (l *Link) loadIdentity() error {
	data, err := os.ReadFile(l.identityFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the agent's identity: %w", err)
	}
	var id identity
	if err := json.Unmarshal(data, &id); err != nil {
		return fmt.Errorf("%s: %w (remove it to join again)", l.identityFile(), err)
	}
	l.id, l.token = id.ID, id.Credential
	return nil
}

// refused says what a failed join means: a saved credential the
// coordinator no longer knows is dropped for the join token, when there
// is one (the next session joins as a new agent); a refused join token,
// a refused credential and no join token, or an agent the coordinator
// knows and refuses (removed), is a RefusedError.
func (l *Link) refused(id string, err error) error {
	if status.Code(err) == codes.PermissionDenied {
		// Removed by an admin (agents rm): joining again would undo that.
		return &RefusedError{fmt.Sprintf("the coordinator at %s refused agent %s: %s; to join this machine again as a new agent, remove %s and start it with a join token",
			l.cfg.Coordinator, id, status.Convert(err).Message(), IdentityFile(l.cfg.StateDir))}
	}
	if status.Code(err) != codes.Unauthenticated {
		return fmt.Errorf("joining: %w", err)
	}
	why := status.Convert(err).Message()
	switch {
	case id == "":
		return &RefusedError{fmt.Sprintf("the coordinator at %s refused the join token (%s): check --join-token (or MONKEYCI_JOIN_TOKEN)", l.cfg.Coordinator, why)}
	case l.cfg.JoinToken == "":
		return &RefusedError{fmt.Sprintf("the coordinator at %s no longer knows agent %s (%s): give it a join token (--join-token or MONKEYCI_JOIN_TOKEN) to join again as a new agent", l.cfg.Coordinator, id, why)}
	}
	l.log.Warn("the coordinator no longer knows this agent's credential; joining again with the join token", "agent", id, "reason", why)
	if err := l.forgetIdentity(); err != nil {
		return &RefusedError{err.Error()}
	}
	return fmt.Errorf("joining as agent %s: %w", id, err)
}

// IdentityFile is where an agent with state dir dir keeps its identity.
func IdentityFile(dir string) string { return filepath.Join(dir, "identity.json") }

// forgetIdentity drops the agent's id and credential: it joins again.
func (l *Link) forgetIdentity() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.id, l.token = "", ""
	if err := os.Remove(l.identityFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the refused identity: %w", err)
	}
	return nil
}

func (l *Link) saveIdentity(id, credential string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.id = id
	if credential == "" {
		return nil
	}
	l.token = credential
	data, _ := json.Marshal(identity{ID: id, Credential: credential})
	if err := os.MkdirAll(l.cfg.StateDir, 0o700); err != nil {
		return err
	}
	tmp := l.identityFile() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("keeping the agent's identity: %w", err)
	}
	return os.Rename(tmp, l.identityFile())
}
