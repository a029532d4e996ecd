package coordinator

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/forge"
	"github.com/monkeyci/monkeyci/forge/status"
)

type sentStatus struct {
	target status.Target
	status status.Status
}

type recordingReporter struct {
	mu   sync.Mutex
	sent []sentStatus
	got  chan struct{}
}

func (r *recordingReporter) Report(t status.Target, s status.Status) {
	r.mu.Lock()
	r.sent = append(r.sent, sentStatus{t, s})
	r.mu.Unlock()
	r.got <- struct{}{}
}

type oneRepo Repo

func (r oneRepo) GetRepo(_ context.Context, name string) (Repo, error) {
	if name != r.Name {
		return Repo{}, ErrNotFound
	}
	return Repo(r), nil
}

// reversingKeys "seals" a value by reversing it, bound to nothing.
type reversingKeys struct{}

func (reversingKeys) Seal(v []byte, _ string) ([]byte, error) { return reversed(v), nil }
func (reversingKeys) Open(v []byte, _ string) ([]byte, error) { return reversed(v), nil }

func reversed(v []byte) []byte {
	out := make([]byte, len(v))
	for i, b := range v {
		out[len(v)-1-i] = b
	}
	return out
}

// Only a forge's build of a commit has statuses, and only when statuses
// are sent at all.
func TestOnlyAForgesBuildOfACommitHasStatuses(t *testing.T) {
	on := newCommitStatuses(&recordingReporter{}, oneRepo{}, nil, "", hclog.NewNullLogger())
	off := newCommitStatuses(nil, oneRepo{}, nil, "", hclog.NewNullLogger())
	fromForge := Build{ID: "b1", Repo: "acme/app", Forge: forgeOf(forge.GitHub, "acme/app"), Source: Source{Commit: "abc"}}
	if got := on.refOf(&fromForge); got == nil || got.kind != forge.GitHub || got.fullName != "acme/app" || got.commit != "abc" {
		t.Errorf("a forge's build: %+v", got)
	}
	if got := off.refOf(&fromForge); got != nil {
		t.Errorf("with no reporter: %+v, want none", got)
	}
	noCommit, notForge := fromForge, fromForge
	noCommit.Source.Commit, notForge.Forge = "", ""
	for _, b := range []Build{noCommit, notForge} {
		if got := on.refOf(&b); got != nil {
			t.Errorf("build %+v: %+v, want none", b, got)
		}
	}
	off.note(nil, status.Running, "nothing to say") // no ref: nothing queued
	if len(off.waiting) != 0 {
		t.Error("a status without a ref was queued")
	}
}

// A build's statuses reach the forge with the repository's token, a link
// to the build, and its end in words.
func TestStatusesGoToTheForgeWithTheRepositorysToken(t *testing.T) {
	rep := &recordingReporter{got: make(chan struct{}, 4)}
	repo := oneRepo{Name: "acme/app", APIURL: "https://api.example", ForgeToken: reversed([]byte("gh-token"))}
	s := newCommitStatuses(rep, repo, reversingKeys{}, "http://ci.example/", hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.run(ctx)

	ref := s.refOf(&Build{ID: "b1", Repo: "acme/app", Forge: forgeOf(forge.GitHub, "acme/app"), Source: Source{Commit: "abc"}})
	s.note(ref, status.Pending, "queued")
	s.noteEnd(ref, events.Failure, "job test failed")
	s.noteEnd(ref, events.Result("odd"), "")
	for range 3 {
		select {
		case <-rep.got:
		case <-time.After(10 * time.Second):
			t.Fatal("a status was not sent")
		}
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	want := []status.Status{
		{Commit: "abc", State: status.Pending, Description: "queued"},
		{Commit: "abc", State: status.Failure, Description: "build failure: job test failed"},
		{Commit: "abc", State: status.Error, Description: "build odd"},
	}
	for i, w := range want {
		got := rep.sent[i]
		w.URL, w.Context = "http://ci.example/builds/b1", statusContext
		if got.status != w {
			t.Errorf("status %d: %+v, want %+v", i, got.status, w)
		}
		if tg := got.target; tg.Kind != forge.GitHub || tg.APIURL != "https://api.example" || tg.Repo != "acme/app" || tg.Token != "gh-token" {
			t.Errorf("status %d went to %+v", i, tg)
		}
	}
}

// A repository without a forge token wants no statuses; one that is gone
// is said in the log, not sent.
func TestNoTokenNoStatus(t *testing.T) {
	s := newCommitStatuses(&recordingReporter{}, oneRepo{Name: "acme/app"}, reversingKeys{}, "", hclog.NewNullLogger())
	ref := &statusRef{build: "b1", repo: "acme/app", commit: "abc", kind: forge.GitHub, fullName: "acme/app"}
	if err := s.send(context.Background(), statusNote{ref, status.Running, "running"}); err != nil {
		t.Errorf("no token: %v, want nothing sent and no error", err)
	}
	gone := *ref
	gone.repo = "acme/gone"
	if err := s.send(context.Background(), statusNote{&gone, status.Running, "running"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a removed repository: %v, want not found", err)
	}
}

// A full queue drops a status rather than wait.
func TestAFullStatusQueueDropsRatherThanWait(t *testing.T) {
	var log strings.Builder
	s := newCommitStatuses(&recordingReporter{}, oneRepo{}, nil, "", hclog.New(&hclog.LoggerOptions{Output: &log}))
	ref := &statusRef{build: "b1"}
	for range statusesWaiting + 1 {
		s.note(ref, status.Running, "running")
	}
	if !strings.Contains(log.String(), "commit status dropped") {
		t.Errorf("the log says %q, want a dropped status", log.String())
	}
}
