package migrate

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/logarchive"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/coordinator/sqlstore"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/pgtest"
)

// A data dir copied to PostgreSQL and from there to a new data dir holds
// what it held, read back through the stores: every build, event, agent,
// token, repository, sealed secret, the pool's state and every log byte.
// A store that is not empty is refused and left as it was.
func TestMigrateRoundTrip(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	first := t.TempDir()
	fill(t, first)
	want := snapshot(t, first)

	dsn := pg.NewDatabase(t)
	var told []string
	if err := Run(ctx, first, dsn, func(what string, n int) { told = append(told, fmt.Sprintf("%s %d", what, n)) }); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(told, ", "); !strings.Contains(got, "builds 4") || !strings.Contains(got, "events 5") || !strings.Contains(got, "log streams 3") {
		t.Errorf("progress: %s", got)
	}
	if got := snapshot(t, dsn); !reflect.DeepEqual(got, want) {
		t.Errorf("PostgreSQL after the copy:\n got %+v\nwant %+v", got, want)
	}
	second := filepath.Join(t.TempDir(), "data")
	if err := Run(ctx, dsn, second, nil); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, second); !reflect.DeepEqual(got, want) {
		t.Errorf("the data dir copied back:\n got %+v\nwant %+v", got, want)
	}

	// Into a store that is not empty: refused, nothing written.
	for _, to := range []string{dsn, second} {
		err := Run(ctx, first, to, nil)
		if err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Errorf("a copy into %s, which is not empty: %v", to, err)
		}
		if got := snapshot(t, to); !reflect.DeepEqual(got, want) {
			t.Errorf("the refused copy changed %s", to)
		}
	}
	if err := Run(ctx, t.TempDir(), dsn, nil); err == nil || !strings.Contains(err.Error(), "no coordinator's state") {
		t.Errorf("a copy from an empty folder: %v", err)
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// fill makes a coordinator's state in dir as a coordinator would.
func fill(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlstore.Open(filepath.Join(dir, "state.db"))
	must(t, err)
	defer s.Close()
	logs, err := logstore.Open(filepath.Join(dir, "logs"))
	must(t, err)
	defer logs.Close()
	depth := 5
	must(t, s.SaveRepo(ctx, coordinator.Repo{Name: "acme/app", URL: "https://example.com/acme/app.git", Branches: []string{"main", "release/*"},
		DefaultBranch: "trunk", Depth: &depth, Forge: "github", WebhookSecret: []byte("sealed-hook"), ForgeToken: []byte("sealed-token"),
		URLCredential: []byte("sealed-cred"), Created: t0}))
	must(t, s.SetSecret(ctx, "acme/app", "TOKEN", []byte("sealed-value")))
	build := func(id string, sec int) coordinator.Build {
		return coordinator.Build{ID: id, Repo: "acme/app", Source: coordinator.Source{URL: "u", Branch: "main", Commit: "c0ffee"},
			Created: t0.Add(time.Duration(sec) * time.Second), Params: map[string]string{"k": "v"}, Labels: map[string]string{"arch": "arm64"},
			Trigger: "push to main", Cache: coordinator.CacheScope{Scope: "main", Fallback: "trunk"}}
	}
	must(t, s.CreateBuild(ctx, build("queued", 1)))
	b := build("forked", 2)
	b.Fork, b.PullRequest, b.Forge = true, 7, "github"
	if _, err := s.CreateDeliveredBuild(ctx, b, coordinator.Delivery{Forge: "github", ID: "d-1", Event: "pull_request 7", Since: t0}); err != nil {
		t.Fatal(err)
	}
	must(t, s.CreateBuild(ctx, build("running", 3)))
	must(t, s.Assign(ctx, "running", 1, "agent-1", t0.Add(time.Hour)))
	must(t, s.Requeue(ctx, "running", 1, coordinator.ReasonAgentLost))
	must(t, s.Assign(ctx, "running", 2, "agent-1", t0.Add(time.Hour)))
	must(t, s.CreateBuild(ctx, build("ended", 4)))
	must(t, s.Assign(ctx, "ended", 1, "agent-1", t0.Add(time.Hour)))
	for _, seq := range []int64{1, 2, 4} { // 3 never came: the mark stays at 2
		_, err := s.AppendEvent(ctx, coordinator.StoredEvent{BuildID: "ended", Attempt: 1, Seq: seq, Event: events.Event{Type: events.JobEnd, Job: fmt.Sprint("j", seq)}})
		must(t, err)
	}
	must(t, s.Finish(ctx, "ended", 1, events.Success, "ok"))
	for seq := int64(1); seq <= 2; seq++ {
		_, err := s.AppendEvent(ctx, coordinator.StoredEvent{BuildID: "running", Attempt: 2, Seq: seq, Event: events.Event{Type: events.JobStart, Job: "j"}})
		must(t, err)
	}
	must(t, s.SaveAgent(ctx, coordinator.Agent{ID: "agent-1", Name: "one", Labels: map[string]string{"arch": "arm64"}, CredentialHash: "abc", Cordoned: true, Joined: t0, LastSeen: t0.Add(time.Minute)}))
	must(t, s.SaveAgent(ctx, coordinator.Agent{ID: "agent-2", Name: "two", CredentialHash: "def", Joined: t0}))
	must(t, s.RemoveAgent(ctx, "agent-2"))
	must(t, s.SaveToken(ctx, coordinator.Token{Hash: strings.Repeat("ab", 32), Kind: coordinator.TokenViewer, Expires: t0.Add(time.Hour)}))
	must(t, s.TokenUsed(ctx, strings.Repeat("ab", 32), t0.Add(time.Minute)))
	must(t, s.SavePool(ctx, pool.State{Desired: 3, LastUp: t0}))
	for key, text := range map[logstore.Key]string{
		{Build: "running", Attempt: 2, Job: "j", Stream: logstore.Stdout}: strings.Repeat("a line of output\n", 100000), // past one chunk
		{Build: "running", Attempt: 2, Stream: logstore.Stderr}:           "the script\n",
		{Build: "ended", Attempt: 1, Job: "j", Stream: logstore.Stdout}:   "done\n",
	} {
		for off := 0; off < len(text); off += logstore.MaxChunk {
			_, err := logs.Write(key, int64(off), []byte(text[off:min(off+logstore.MaxChunk, len(text))]))
			must(t, err)
		}
	}
}

// state is what a store holds, as read through it.
type state struct {
	Builds    []coordinator.Build
	Events    map[string][]coordinator.StoredEvent
	Marks     map[string]int64
	Agents    []coordinator.Agent
	Removed   coordinator.Agent
	Tokens    []coordinator.Token
	Repos     []coordinator.Repo
	Secrets   map[string][]byte
	Listed    []coordinator.SecretInfo
	Pool      pool.State
	Logs      map[logstore.Key]string
	Duplicate bool // the copied delivery is one seen before
}

func snapshot(t *testing.T, place string) state {
	t.Helper()
	ctx := context.Background()
	e, err := open(ctx, place, false)
	must(t, err)
	defer e.close()
	s := e.store
	var st state
	st.Builds, err = s.ListBuilds(ctx, coordinator.BuildFilter{})
	must(t, err)
	st.Events, st.Marks = map[string][]coordinator.StoredEvent{}, map[string]int64{}
	for _, b := range st.Builds {
		st.Events[b.ID], err = s.Events(ctx, b.ID)
		must(t, err)
		for a := 1; a <= b.Attempt; a++ {
			st.Marks[fmt.Sprint(b.ID, "#", a)], err = s.LastSeq(ctx, b.ID, a)
			must(t, err)
		}
	}
	st.Agents, err = s.ListAgents(ctx)
	must(t, err)
	st.Removed, err = s.GetAgent(ctx, "agent-2")
	must(t, err)
	st.Tokens, err = s.ListTokens(ctx)
	must(t, err)
	st.Repos, err = s.ListRepos(ctx)
	must(t, err)
	st.Secrets, err = s.Secrets(ctx, "acme/app")
	must(t, err)
	st.Listed, err = s.ListSecrets(ctx, "acme/app")
	must(t, err)
	st.Pool, err = s.LoadPool(ctx)
	must(t, err)
	st.Logs = readLogs(t, e.logs)
	_, err = s.CreateDeliveredBuild(ctx, coordinator.Build{ID: "again", Repo: "acme/app", Source: coordinator.Source{URL: "u"}}, coordinator.Delivery{Forge: "github", ID: "d-1"})
	st.Duplicate = errors.Is(err, coordinator.ErrDuplicate)
	return st
}

func readLogs(t *testing.T, l logarchive.Live) map[logstore.Key]string {
	t.Helper()
	out := map[logstore.Key]string{}
	builds, err := l.Builds()
	must(t, err)
	for _, b := range builds {
		as, err := l.Attempts(b)
		must(t, err)
		for _, a := range as {
			streams, err := l.Sizes(b, a)
			must(t, err)
			for _, st := range streams {
				p := make([]byte, st.Size)
				n, err := l.ReadAt(st.Key, 0, p)
				if n != len(p) {
					t.Fatalf("log %s: read %d of %d: %v", st.Key, n, len(p), err)
				}
				out[st.Key] = string(p)
			}
		}
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
