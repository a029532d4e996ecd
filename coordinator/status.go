package coordinator

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/forge"
	"github.com/monkeyci/monkeyci/forge/status"
)

// StatusReporter sends commit statuses to forges without blocking its
// caller (package forge/status's Reporter).
type StatusReporter interface {
	Report(t status.Target, s status.Status)
}

// statusContext names our check at the forge.
const statusContext = "monkeyci"

// statusesWaiting bounds the statuses waiting to be sent.
const statusesWaiting = 1024

// statusRef is what reporting a build's status needs: only builds that a
// forge's webhook started have one.
type statusRef struct {
	build, repo, commit string
	kind                forge.Kind
	fullName            string // the repository's name at the forge
}

// forgeOf says where a build came from, as Build.Forge keeps it.
func forgeOf(kind forge.Kind, fullName string) string { return string(kind) + ":" + fullName }

// statusNote is one status to send.
type statusNote struct {
	ref   *statusRef
	state status.State
	desc  string
}

// repoReader reads a registered repository (the Store): its forge token.
type repoReader interface {
	GetRepo(ctx context.Context, name string) (Repo, error)
}

// commitStatuses tells forges how the builds they started are doing. Its
// callers never wait: statuses queue on a channel that run sends from.
type commitStatuses struct {
	reporter  StatusReporter // nil: statuses are not sent
	repos     repoReader
	keys      Sealer // opens the repositories' forge tokens
	publicURL string // the coordinator's, for the link in a status
	log       hclog.Logger
	waiting   chan statusNote
}

func newCommitStatuses(reporter StatusReporter, repos repoReader, keys Sealer, publicURL string, log hclog.Logger) *commitStatuses {
	return &commitStatuses{reporter: reporter, repos: repos, keys: keys, publicURL: publicURL, log: log, waiting: make(chan statusNote, statusesWaiting)}
}

// refOf is where b's statuses go: nil when b did not come from a forge,
// names no commit, or statuses are not sent at all.
func (s *commitStatuses) refOf(b *Build) *statusRef {
	kind, name, ok := strings.Cut(b.Forge, ":")
	if !ok || s.reporter == nil || b.Source.Commit == "" {
		return nil
	}
	return &statusRef{build: b.ID, repo: b.Repo, commit: b.Source.Commit, kind: forge.Kind(kind), fullName: name}
}

// note queues a status for the forge; it never blocks (a full queue
// drops it, said in the log: a forge's status must not slow builds).
func (s *commitStatuses) note(ref *statusRef, state status.State, desc string) {
	if ref == nil {
		return
	}
	select {
	case s.waiting <- statusNote{ref, state, desc}:
	default:
		s.log.Warn("commit status dropped: too many waiting", "build", ref.build, "state", state)
	}
}

// queued queues the status of a build that waits in the queue.
func (s *commitStatuses) queued(b *Build) { s.note(s.refOf(b), status.Pending, "queued") }

// noteEnd queues a build's last status.
func (s *commitStatuses) noteEnd(ref *statusRef, result events.Result, message string) {
	st := map[events.Result]status.State{events.Success: status.Success, events.Failure: status.Failure,
		events.Canceled: status.Canceled}[result]
	if st == "" {
		st = status.Error
	}
	desc := "build " + string(result)
	if message != "" {
		desc += ": " + message
	}
	s.note(ref, st, desc)
}

// run hands the queued statuses to the reporter, with each repository's
// forge token, until ctx ends.
func (s *commitStatuses) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-s.waiting:
			if err := s.send(ctx, n); err != nil {
				s.log.Warn("commit status not sent", "build", n.ref.build, "error", err)
			}
		}
	}
}

func (s *commitStatuses) send(ctx context.Context, n statusNote) error {
	repo, err := s.repos.GetRepo(ctx, n.ref.repo)
	if err != nil {
		return err
	}
	if len(repo.ForgeToken) == 0 || s.keys == nil {
		return nil // no token given: statuses not wanted
	}
	token, err := s.keys.Open(repo.ForgeToken, forgeTokenContext(repo.Name))
	if err != nil {
		return fmt.Errorf("forge token of %s: %w", repo.Name, err)
	}
	link := ""
	if s.publicURL != "" {
		link = strings.TrimSuffix(s.publicURL, "/") + "/builds/" + n.ref.build
	}
	s.reporter.Report(
		status.Target{Kind: n.ref.kind, APIURL: repo.APIURL, Repo: n.ref.fullName, Token: string(token)},
		status.Status{Commit: n.ref.commit, State: n.state, URL: link, Description: n.desc, Context: statusContext})
	return nil
}
