package coordinator

import (
	"context"
	"fmt"
	"strings"

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

// statusRef is what reporting a build's status needs: only builds that a
// forge's webhook started have one.
type statusRef struct {
	build, repo, commit string
	kind                forge.Kind
	fullName            string // the repository's name at the forge
}

// forgeOf says where a build came from, as Build.Forge keeps it.
func forgeOf(kind forge.Kind, fullName string) string { return string(kind) + ":" + fullName }

func (c *Coordinator) refOf(b *Build) *statusRef {
	kind, name, ok := strings.Cut(b.Forge, ":")
	if !ok || c.cfg.Statuses == nil || b.Source.Commit == "" {
		return nil
	}
	return &statusRef{build: b.ID, repo: b.Repo, commit: b.Source.Commit, kind: forge.Kind(kind), fullName: name}
}

// statusNote is one status to send.
type statusNote struct {
	ref   *statusRef
	state status.State
	desc  string
}

// noteStatus queues a status for the forge; it never blocks (a full queue
// drops it, said in the log: a forge's status must not slow builds).
func (c *Coordinator) noteStatus(ref *statusRef, state status.State, desc string) {
	if ref == nil {
		return
	}
	select {
	case c.statuses <- statusNote{ref, state, desc}:
	default:
		c.log.Warn("commit status dropped: too many waiting", "build", ref.build, "state", state)
	}
}

// reportEnd queues a build's last status.
func (c *Coordinator) reportEnd(ref *statusRef, result events.Result, message string) {
	st := map[events.Result]status.State{events.Success: status.Success, events.Failure: status.Failure,
		events.Canceled: status.Canceled}[result]
	if st == "" {
		st = status.Error
	}
	desc := "build " + string(result)
	if message != "" {
		desc += ": " + message
	}
	c.noteStatus(ref, st, desc)
}

// sendStatuses hands the queued statuses to the reporter, with each
// repository's forge token, until ctx ends.
func (c *Coordinator) sendStatuses(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-c.statuses:
			if err := c.sendStatus(ctx, n); err != nil {
				c.log.Warn("commit status not sent", "build", n.ref.build, "error", err)
			}
		}
	}
}

func (c *Coordinator) sendStatus(ctx context.Context, n statusNote) error {
	repo, err := c.cfg.Store.GetRepo(ctx, n.ref.repo)
	if err != nil {
		return err
	}
	if len(repo.ForgeToken) == 0 || c.cfg.Keys == nil {
		return nil // no token given: statuses not wanted
	}
	token, err := c.cfg.Keys.Open(repo.ForgeToken, forgeTokenContext(repo.Name))
	if err != nil {
		return fmt.Errorf("forge token of %s: %w", repo.Name, err)
	}
	link := ""
	if c.cfg.PublicURL != "" {
		link = strings.TrimSuffix(c.cfg.PublicURL, "/") + "/builds/" + n.ref.build
	}
	c.cfg.Statuses.Report(
		status.Target{Kind: n.ref.kind, APIURL: repo.APIURL, Repo: n.ref.fullName, Token: string(token)},
		status.Status{Commit: n.ref.commit, State: n.state, URL: link, Description: n.desc, Context: statusContext})
	return nil
}
