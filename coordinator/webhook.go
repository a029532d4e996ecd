package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"

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

func (c *Coordinator) serveWebhook(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	answer := func(code int, a webhookAnswer) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(a)
	}
	refuse := func(code int, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		c.log.Info("webhook refused", "forge", r.PathValue("forge"), "status", code, "reason", msg)
		answer(code, webhookAnswer{Error: msg})
	}
	kind, err := forge.ParseKind(r.PathValue("forge"))
	if err != nil {
		refuse(http.StatusNotFound, "%v", err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, forge.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			refuse(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", forge.MaxBody)
			return
		}
		refuse(http.StatusBadRequest, "reading the body: %v", err)
		return
	}
	// Which repository, to know its secret: nothing else is trusted yet.
	name, urls, err := forge.RepoOf(kind, body)
	if err != nil {
		refuse(http.StatusBadRequest, "%v", err)
		return
	}
	// An unknown repository, a secret that cannot be read and a signature
	// that does not verify get one answer, so that no one without the
	// secret learns which names are registered; the log says which.
	unverified := func(reason string, args ...any) {
		c.log.Info("webhook refused", append([]any{"forge", kind, "repo", name, "status", http.StatusUnauthorized, "reason", reason}, args...)...)
		answer(http.StatusUnauthorized, webhookAnswer{Error: notVerified})
	}
	repo, err := c.cfg.Store.FindRepo(ctx, []string{name}, urls)
	if errors.Is(err, ErrNotFound) {
		unverified("no repository is registered with that name or clone URL (monkeyci repos add)")
		return
	}
	if err != nil {
		refuse(http.StatusServiceUnavailable, "reading repositories: %v", err)
		return
	}
	secret := ""
	if len(repo.WebhookSecret) > 0 && c.cfg.Keys != nil {
		plain, err := c.cfg.Keys.Open(repo.WebhookSecret, webhookSecretContext(repo.Name))
		if err != nil {
			unverified("the repository's webhook secret cannot be read", "error", err)
			return
		}
		secret = string(plain)
	}
	if err := forge.Verify(kind, r.Header, body, secret); err != nil {
		unverified(err.Error())
		return
	}
	delivery := forge.DeliveryID(kind, r.Header)
	if delivery == "" {
		refuse(http.StatusBadRequest, "the delivery has no id header")
		return
	}
	ev, err := forge.Parse(kind, r.Header, body)
	var ignored *forge.Ignored
	if errors.As(err, &ignored) {
		c.log.Info("webhook ignored", "forge", kind, "repo", repo.Name, "delivery", delivery, "reason", ignored.Reason)
		answer(http.StatusAccepted, webhookAnswer{Ignored: ignored.Reason})
		return
	}
	if err != nil {
		refuse(http.StatusBadRequest, "%v", err)
		return
	}
	if ev.Kind == forge.Push && !branchBuilds(repo.Branches, ev.Branch) {
		why := fmt.Sprintf("branch %s is not among %s's branches %v", ev.Branch, repo.Name, repo.Branches)
		c.log.Info("webhook ignored", "forge", kind, "repo", repo.Name, "delivery", delivery, "reason", why)
		answer(http.StatusAccepted, webhookAnswer{Ignored: why})
		return
	}
	src := Source{URL: repo.URL, Branch: ev.Branch, Commit: ev.Commit, Tag: ev.Tag}
	var pr int
	if ev.Kind == forge.PullRequest {
		pr = ev.Number
	}
	b, err := c.TriggerDelivered(ctx, Build{
		Repo: repo.Name, Source: src, PullRequest: pr, Fork: ev.Kind == forge.PullRequest && ev.Fork, Cache: CacheScopeOf(src, pr, repo.DefaultBranch),
		Trigger: describeEvent(kind, ev), Forge: forgeOf(kind, ev.Repo),
	}, Delivery{Forge: string(kind), ID: delivery, Event: ev.Key()})
	switch {
	case errors.Is(err, ErrDuplicate):
		answer(http.StatusOK, webhookAnswer{Build: b.ID, Duplicate: true})
	case err != nil:
		refuse(http.StatusServiceUnavailable, "storing the build: %v", err)
	default:
		c.log.Info("webhook: build queued", "forge", kind, "repo", repo.Name, "build", b.ID, "trigger", b.Trigger)
		answer(http.StatusAccepted, webhookAnswer{Build: b.ID})
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
