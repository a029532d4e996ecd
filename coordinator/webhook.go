package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/forge"
)

// WebhookHandler serves POST /webhooks/{forge}: a forge's delivery is
// checked (size, repository, signature, delivery id), read, and stored as
// a queued build, answered 202 with the build's id before anything is
// cloned. Nothing that fails a check creates a build. A delivery seen
// before, or the same event (repository, ref, commit) delivered again
// within RedeliveryWindow, is answered 200 with the build made first.
func (c *Coordinator) WebhookHandler() http.Handler {
	return http.HandlerFunc(c.serveWebhook)
}

// notVerified is the answer's error (401) to a delivery for a repository not
// registered and to one whose signature does not verify: the same words.
const notVerified = "the delivery is not signed with the webhook secret of a repository registered here"

// webhookAnswer is the JSON body of every answer.
type webhookAnswer struct {
	Build     string `json:"build,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Ignored   string `json:"ignored,omitempty"`
	Error     string `json:"error,omitempty"`
}

// serveWebhook takes a delivery through its checks, in order. Each step
// that ends the delivery answers it, and says so (ok false).
func (c *Coordinator) serveWebhook(w http.ResponseWriter, r *http.Request) {
	reply := webhookReply{w: w, log: c.log, forge: r.PathValue("forge")}
	kind, err := forge.ParseKind(reply.forge)
	if err != nil {
		reply.refuse(http.StatusNotFound, "%v", err)
		return
	}
	body, ok := reply.readBody(r)
	if !ok {
		return
	}
	repo, ok := c.verifiedRepo(r.Context(), reply, kind, r.Header, body)
	if !ok {
		return
	}
	delivery := forge.DeliveryID(kind, r.Header)
	if delivery == "" {
		reply.refuse(http.StatusBadRequest, "the delivery has no id header")
		return
	}
	ev, ok := reply.eventToBuild(kind, repo, delivery, r.Header, body)
	if !ok {
		return
	}
	c.queueDelivered(r.Context(), reply, kind, repo, delivery, ev)
}

// webhookReply answers one delivery.
type webhookReply struct {
	w     http.ResponseWriter
	log   hclog.Logger
	forge string // as the path names it
}

func (a webhookReply) answer(code int, body webhookAnswer) {
	a.w.Header().Set("Content-Type", "application/json")
	a.w.WriteHeader(code)
	_ = json.NewEncoder(a.w).Encode(body)
}

// refuse answers an error, and logs it.
func (a webhookReply) refuse(code int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	a.log.Info("webhook refused", "forge", a.forge, "status", code, "reason", msg)
	a.answer(code, webhookAnswer{Error: msg})
}

// readBody reads the delivery's body, refusing one over forge.MaxBody.
func (a webhookReply) readBody(r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(a.w, r.Body, forge.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.refuse(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", forge.MaxBody)
			return nil, false
		}
		a.refuse(http.StatusBadRequest, "reading the body: %v", err)
		return nil, false
	}
	return body, true
}

// verifiedRepo finds the repository the delivery is for, and checks the
// delivery is signed with its webhook secret.
func (c *Coordinator) verifiedRepo(ctx context.Context, reply webhookReply, kind forge.Kind, h http.Header, body []byte) (Repo, bool) {
	// Which repository, to know its secret: nothing else is trusted yet.
	name, urls, err := forge.RepoOf(kind, body)
	if err != nil {
		reply.refuse(http.StatusBadRequest, "%v", err)
		return Repo{}, false
	}
	// An unknown repository, a secret that cannot be read and a signature
	// that does not verify get one answer, so that no one without the
	// secret learns which names are registered; the log says which.
	unverified := func(reason string, args ...any) (Repo, bool) {
		c.log.Info("webhook refused", append([]any{"forge", kind, "repo", name, "status", http.StatusUnauthorized, "reason", reason}, args...)...)
		reply.answer(http.StatusUnauthorized, webhookAnswer{Error: notVerified})
		return Repo{}, false
	}
	repo, err := c.cfg.Store.FindRepo(ctx, []string{name}, urls)
	if errors.Is(err, ErrNotFound) {
		return unverified("no repository is registered with that name or clone URL (monkeyci repos add)")
	}
	if err != nil {
		reply.refuse(http.StatusServiceUnavailable, "reading repositories: %v", err)
		return Repo{}, false
	}
	secret := ""
	if len(repo.WebhookSecret) > 0 && c.cfg.Keys != nil {
		plain, err := c.cfg.Keys.Open(repo.WebhookSecret, webhookSecretContext(repo.Name))
		if err != nil {
			return unverified("the repository's webhook secret cannot be read", "error", err)
		}
		secret = string(plain)
	}
	if err := forge.Verify(kind, h, body, secret); err != nil {
		return unverified(err.Error())
	}
	return repo, true
}

// eventToBuild reads the verified delivery's event, and answers those
// that start no build: an event of another kind, a push to a branch the
// repository does not build.
func (a webhookReply) eventToBuild(kind forge.Kind, repo Repo, delivery string, h http.Header, body []byte) (forge.Event, bool) {
	ev, err := forge.Parse(kind, h, body)
	var ignored *forge.Ignored
	if errors.As(err, &ignored) {
		a.log.Info("webhook ignored", "forge", kind, "repo", repo.Name, "delivery", delivery, "reason", ignored.Reason)
		a.answer(http.StatusAccepted, webhookAnswer{Ignored: ignored.Reason})
		return forge.Event{}, false
	}
	if err != nil {
		a.refuse(http.StatusBadRequest, "%v", err)
		return forge.Event{}, false
	}
	if ev.Kind == forge.Push && !branchBuilds(repo.Branches, ev.Branch) {
		why := fmt.Sprintf("branch %s is not among %s's branches %v", ev.Branch, repo.Name, repo.Branches)
		a.log.Info("webhook ignored", "forge", kind, "repo", repo.Name, "delivery", delivery, "reason", why)
		a.answer(http.StatusAccepted, webhookAnswer{Ignored: why})
		return forge.Event{}, false
	}
	return ev, true
}

// queueDelivered stores the event's build, queued, and answers with its
// id: the first build's, for a delivery or an event seen before.
func (c *Coordinator) queueDelivered(ctx context.Context, reply webhookReply, kind forge.Kind, repo Repo, delivery string, ev forge.Event) {
	src := Source{URL: repo.URL, Branch: ev.Branch, Commit: ev.Commit, Tag: ev.Tag}
	var pr int
	if ev.Kind == forge.PullRequest {
		pr = ev.Number
	}
	b, err := c.TriggerDelivered(ctx, Build{
		Repo: repo.Name, Source: src, PullRequest: pr, Fork: ev.Kind == forge.PullRequest && ev.Fork, Cache: CacheScopeOf(src, pr, repo.DefaultBranch),
		Trigger: describeEvent(kind, ev), Forge: forgeOf(kind, ev.Repo), Priority: repo.Priority,
	}, Delivery{Forge: string(kind), ID: delivery, Event: ev.Key()})
	switch {
	case errors.Is(err, ErrDuplicate):
		reply.answer(http.StatusOK, webhookAnswer{Build: b.ID, Duplicate: true})
	case err != nil:
		reply.refuse(http.StatusServiceUnavailable, "storing the build: %v", err)
	default:
		c.log.Info("webhook: build queued", "forge", kind, "repo", repo.Name, "build", b.ID, "trigger", b.Trigger)
		c.supersede(ctx, repo, b)
		reply.answer(http.StatusAccepted, webhookAnswer{Build: b.ID})
	}
}

// branchBuilds says whether a push to branch builds, by the repository's
// branch globs (none: every branch).
func branchBuilds(globs []string, branch string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if ok, _ := path.Match(g, branch); ok {
			return true
		}
	}
	return false
}

// describeEvent says what started a build, in words.
func describeEvent(kind forge.Kind, ev forge.Event) string {
	var what string
	switch ev.Kind {
	case forge.Push:
		what = "push to " + ev.Branch
	case forge.Tag:
		what = "tag " + ev.Tag
	case forge.PullRequest:
		what = fmt.Sprintf("pull request #%d (%s)", ev.Number, ev.Branch)
		if ev.Fork {
			what += " from a fork, without secrets,"
		}
	}
	if ev.Sender != "" {
		what += " by " + ev.Sender
	}
	return what + " on " + string(kind)
}
