package forge

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"unicode"
)

// MaxBody is the largest delivery body accepted (5 MB); the HTTP handler
// answers 413 past it.
const MaxBody = 5 << 20

// Errors the HTTP handler maps to statuses (match with errors.Is).
var (
	// ErrUnsigned: the signature or token header is missing (401).
	ErrUnsigned = errors.New("webhook delivery is not signed")
	// ErrSignature: the signature or token is wrong (401).
	ErrSignature = errors.New("webhook signature is wrong")
	// ErrMalformed: the body is not what its event says (400).
	ErrMalformed = errors.New("malformed webhook delivery")
)

// Ignored is the error for a well-formed delivery of an event that starts
// no build (match with errors.As).
type Ignored struct {
	// Reason says which event, in words.
	Reason string
}

func (e *Ignored) Error() string { return e.Reason }

func ignored(format string, args ...any) error {
	return &Ignored{Reason: fmt.Sprintf(format, args...)}
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

func missing(where, field string) error {
	return malformed("%s: %q is missing", where, field)
}

func unknownKind(kind Kind) error {
	return fmt.Errorf("unknown forge %q: use github, gitlab, gitea or bitbucket", kind)
}

// Verify checks the delivery's signature (GitLab: its token) against the
// repository's webhook secret, in constant time:
//
//	GitHub:    X-Hub-Signature-256: "sha256=" + hex(HMAC-SHA256(secret, body))
//	Gitea:     X-Gitea-Signature or X-Forgejo-Signature: hex(HMAC-SHA256(secret, body)),
//	           else X-Hub-Signature-256 as GitHub's
//	GitLab:    X-Gitlab-Token: the secret itself
//	Bitbucket: X-Hub-Signature: "sha256=" + hex(HMAC-SHA256(secret, body))
//
// An empty secret never verifies.
func Verify(kind Kind, h http.Header, body []byte, secret string) error {
	switch kind {
	case GitHub, GitLab, Gitea, Bitbucket:
	default:
		return unknownKind(kind)
	}
	if secret == "" {
		// Else anyone could sign with the empty key.
		return fmt.Errorf("%w: the repository has no webhook secret: set one, at the forge and here", ErrSignature)
	}
	if kind == GitLab {
		token := h.Get("X-Gitlab-Token")
		if token == "" {
			return fmt.Errorf("%w: the X-Gitlab-Token header is missing: set the webhook's secret token at GitLab", ErrUnsigned)
		}
		// Compare digests, so that the time taken does not reveal the
		// secret's length either.
		got, want := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(secret))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return fmt.Errorf("%w: X-Gitlab-Token is not the repository's webhook secret", ErrSignature)
		}
		return nil
	}
	name, prefix := signatureHeader(kind, h)
	sig := h.Get(name)
	if sig == "" {
		if kind == Gitea {
			name = "X-Gitea-Signature (or X-Forgejo-Signature)"
		}
		return fmt.Errorf("%w: the %s header is missing: set the webhook's secret at the forge", ErrUnsigned, name)
	}
	digits, ok := strings.CutPrefix(sig, prefix)
	got, err := hex.DecodeString(digits)
	if !ok || err != nil {
		return fmt.Errorf("%w: %s is not %shex(HMAC-SHA256(secret, body))", ErrSignature, name, prefix)
	}
	if !hmac.Equal(got, mac(body, secret)) {
		return fmt.Errorf("%w: %s does not match the body and the repository's webhook secret", ErrSignature, name)
	}
	return nil
}

// signatureHeader names the header holding kind's HMAC signature, and the
// prefix before its hex digits.
func signatureHeader(kind Kind, h http.Header) (name, prefix string) {
	switch kind {
	case Gitea:
		// Forgejo sends both of its own and Gitea's; older or proxied
		// deliveries may carry only GitHub's.
		for _, name := range []string{"X-Gitea-Signature", "X-Forgejo-Signature"} {
			if h.Get(name) != "" {
				return name, ""
			}
		}
		if h.Get("X-Hub-Signature-256") != "" {
			return "X-Hub-Signature-256", "sha256="
		}
		return "X-Gitea-Signature", ""
	case Bitbucket:
		return "X-Hub-Signature", "sha256="
	}
	return "X-Hub-Signature-256", "sha256="
}

func mac(body []byte, secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

// Sign sets the header(s) Verify checks, as kind's forge would: for tests
// and fakes. It sets nothing for an unknown kind.
func Sign(kind Kind, h http.Header, body []byte, secret string) {
	sig := hex.EncodeToString(mac(body, secret))
	switch kind {
	case GitHub:
		h.Set("X-Hub-Signature-256", "sha256="+sig)
	case Gitea:
		h.Set("X-Gitea-Signature", sig)
	case GitLab:
		h.Set("X-Gitlab-Token", secret)
	case Bitbucket:
		h.Set("X-Hub-Signature", "sha256="+sig)
	}
}

// DeliveryID is the forge's id of this delivery, for deduplication; ""
// when absent.
func DeliveryID(kind Kind, h http.Header) string {
	switch kind {
	case GitHub:
		return h.Get("X-GitHub-Delivery")
	case GitLab:
		return h.Get("X-Gitlab-Event-UUID")
	case Gitea:
		if id := h.Get("X-Gitea-Delivery"); id != "" {
			return id
		}
		return h.Get("X-Forgejo-Delivery")
	case Bitbucket:
		return h.Get("X-Request-UUID")
	}
	return ""
}

// RepoOf reads which repository a delivery is about: its full name and
// clone URLs. It runs before Verify, to find the repository's secret, so
// it reads nothing else.
func RepoOf(kind Kind, body []byte) (name string, cloneURLs []string, err error) {
	var p repoPayload
	switch kind {
	case GitHub, Gitea:
		p = new(ghRepository)
	case GitLab:
		p = new(glProject)
	case Bitbucket:
		p = new(bbRepository)
	default:
		return "", nil, unknownKind(kind)
	}
	e, err := decodeRepo(string(kind)+" delivery", body, p)
	return e.Repo, e.CloneURLs, err
}

// Parse reads a verified delivery into an Event. A well-formed delivery
// that starts no build gives an *Ignored; a body that is not what its
// event says, an error wrapping ErrMalformed.
func Parse(kind Kind, h http.Header, body []byte) (Event, error) {
	headers, ok := eventHeaders[kind]
	if !ok {
		return Event{}, unknownKind(kind)
	}
	event, err := eventName(kind, h, headers...)
	if err != nil {
		return Event{}, err
	}
	// The events that can start a build.
	type route struct {
		kind  Kind
		event string
	}
	switch (route{kind, event}) {
	case route{GitHub, "push"}, route{Gitea, "push"}:
		return parseGHPush(kind, body)
	case route{GitHub, "pull_request"}:
		return parseGHPullRequest(kind, body, "opened", "reopened", "synchronize", "ready_for_review")
	case route{Gitea, "pull_request"}:
		// Gitea says "synchronized" where GitHub says "synchronize".
		return parseGHPullRequest(kind, body, "opened", "reopened", "synchronized", "synchronize")
	case route{GitLab, "Push Hook"}:
		return parseGLPush(event, "push", body)
	case route{GitLab, "Tag Push Hook"}:
		return parseGLPush(event, "tag_push", body)
	case route{GitLab, "Merge Request Hook"}:
		return parseGLMergeRequest(body)
	case route{Bitbucket, "repo:push"}:
		return parseBBPush(body)
	case route{Bitbucket, "pullrequest:created"}, route{Bitbucket, "pullrequest:updated"}:
		return parseBBPullRequest(event, body)
	}
	return otherEvent(kind, event, body)
}

// eventHeaders names, per forge, the header(s) saying a delivery's event.
var eventHeaders = map[Kind][]string{
	GitHub:    {"X-GitHub-Event"},
	GitLab:    {"X-Gitlab-Event"},
	Gitea:     {"X-Gitea-Event", "X-Forgejo-Event"},
	Bitbucket: {"X-Event-Key"},
}

// decode reads body, a JSON object, into v.
func decode(where string, body []byte, v any) error {
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return malformed("%s: the body is not a JSON object", where)
	}
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) && te.Field != "" {
		return malformed("%s: %q is a JSON %s, not %s", where, te.Field, te.Value, jsonType(te.Type))
	}
	return malformed("%s: the body is not JSON: %v", where, err)
}

// decodeRepo decodes body into p and starts the event with p's repository.
func decodeRepo(where string, body []byte, p repoPayload) (Event, error) {
	if err := decode(where, body, p); err != nil {
		return Event{}, err
	}
	return p.repo(where)
}

// jsonType names t's JSON counterpart, for errors.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int:
		return "an integer"
	case reflect.Slice:
		return "an array"
	case reflect.Struct, reflect.Pointer:
		return "an object"
	}
	return t.String()
}

// eventName is the event header's value, checked present.
func eventName(kind Kind, h http.Header, headers ...string) (string, error) {
	for _, name := range headers {
		if e := h.Get(name); e != "" {
			return e, nil
		}
	}
	want := headers[0]
	if len(headers) > 1 {
		want += " (or " + strings.Join(headers[1:], ", ") + ")"
	}
	return "", malformed("%s delivery: the %s header is missing", kind, want)
}

// otherEvent answers a delivery of an event that starts no build, once its
// body is seen to be JSON.
func otherEvent(kind Kind, event string, body []byte) (Event, error) {
	where := fmt.Sprintf("%s %s", kind, clip(event))
	if err := decode(where, body, new(struct{})); err != nil {
		return Event{}, err
	}
	return Event{}, ignored("%s event %q starts no build", kind, clip(event))
}

// repoPayload is a payload's repository part, decoded by RepoOf alone and
// embedded in each event's payload. repo starts the event with it: its Repo
// and CloneURLs.
type repoPayload interface {
	repo(where string) (Event, error)
}

// maxCloneURLs bounds the clone URLs read from a delivery.
const maxCloneURLs = 8

// checkRepo starts the event of repository name (read from field) and its
// clone URLs.
func checkRepo(where, field, name string, urls ...string) (Event, error) {
	if name == "" {
		return Event{}, missing(where, field)
	}
	if hasControl(name) {
		return Event{}, malformed("%s: %q holds a control character: %q", where, field, clip(name))
	}
	var clone []string
	for _, u := range urls {
		// A few suffice to match a registration; more would only let an
		// unverified body make work.
		if len(clone) == maxCloneURLs {
			break
		}
		if u != "" && !hasControl(u) && !slices.Contains(clone, u) {
			clone = append(clone, u)
		}
	}
	return Event{Repo: name, CloneURLs: clone}, nil
}

// withCommit completes e with the commit to build, read from field: 7 to 40
// hex digits (Bitbucket's pull requests name abbreviated ones).
func withCommit(e Event, where, field, id string) (Event, error) {
	if id == "" {
		return Event{}, missing(where, field)
	}
	if !isHex(id) || len(id) < 7 || len(id) > 40 {
		return Event{}, malformed("%s: %q is not a commit id (7 to 40 hex digits): %q", where, field, clip(id))
	}
	e.Commit = strings.ToLower(id)
	return e, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isZero tells a deletion's all-zero commit id.
func isZero(id string) bool {
	return id != "" && strings.Trim(id, "0") == ""
}

// checkName checks a branch or tag name (what) read from field: it ends up
// in git's command lines and in logs.
func checkName(where, field, what, name string) error {
	switch {
	case name == "":
		return malformed("%s: %q has no %s name", where, field, what)
	case len(name) > 255:
		return malformed("%s: the %s name in %q is longer than 255 bytes", where, what, field)
	case name[0] == '-':
		// git would take it for an option.
		return malformed("%s: the %s name in %q starts with '-': %q", where, what, field, name)
	case hasControl(name):
		return malformed("%s: the %s name in %q holds a control character: %q", where, what, field, name)
	}
	return nil
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

// sender keeps a user name fit for a build's trigger, or "".
func sender(names ...string) string {
	for _, n := range names {
		if n != "" {
			if len(n) > 255 || hasControl(n) {
				return ""
			}
			return n
		}
	}
	return ""
}

// clip shortens a bad value quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// pushed makes e the push of ref: ok is false for refs that are neither
// branches nor tags.
func pushed(e Event, where, ref string) (Event, bool, error) {
	if ref == "" {
		return e, false, missing(where, "ref")
	}
	if b, found := strings.CutPrefix(ref, "refs/heads/"); found {
		e.Kind, e.Branch = Push, b
		return e, true, checkName(where, "ref", "branch", b)
	}
	if t, found := strings.CutPrefix(ref, "refs/tags/"); found {
		e.Kind, e.Tag = Tag, t
		return e, true, checkName(where, "ref", "tag", t)
	}
	return e, false, nil
}

// pullRequest completes e as pull request number, from branch at commit;
// branchField and commitField name them in errors.
func pullRequest(e Event, where string, number int, branchField, branch, commitField, commit string) (Event, error) {
	if err := checkName(where, branchField, "branch", branch); err != nil {
		return Event{}, err
	}
	e.Kind, e.Branch, e.Number = PullRequest, branch, number
	return withCommit(e, where, commitField, commit)
}

// GitHub, and Gitea and Forgejo, whose push and pull_request payloads
// follow GitHub's.

type ghRepository struct {
	Repository *struct {
		ID       int64  `json:"id"`
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
		SSHURL   string `json:"ssh_url"`
	} `json:"repository"`
}

func (p *ghRepository) repo(where string) (Event, error) {
	if p.Repository == nil {
		return Event{}, missing(where, "repository")
	}
	r := p.Repository
	return checkRepo(where, "repository.full_name", r.FullName, r.CloneURL, r.SSHURL)
}

type ghUser struct {
	Login string `json:"login"`
}

type ghPush struct {
	ghRepository
	Ref     string `json:"ref"`
	After   string `json:"after"`
	Deleted bool   `json:"deleted"`
	Sender  ghUser `json:"sender"`
	Pusher  ghUser `json:"pusher"` // Gitea's has a login; GitHub's not
}

type ghPullRequest struct {
	ghRepository
	Action      string `json:"action"`
	Number      int    `json:"number"`
	Sender      ghUser `json:"sender"`
	PullRequest *struct {
		Head struct {
			SHA    string `json:"sha"`
			Ref    string `json:"ref"`
			RepoID int64  `json:"repo_id"` // Gitea's
			Repo   *struct {
				ID       int64  `json:"id"`
				FullName string `json:"full_name"`
			} `json:"repo"`
		} `json:"head"`
	} `json:"pull_request"`
}

// fork tells whether the pull request comes from another repository than
// the one the delivery is for: by the ids where the forge gives them, else
// by the full names; a source it does not name counts as a fork.
func (p *ghPullRequest) fork() bool {
	base, head := p.Repository, p.PullRequest.Head
	switch {
	case head.Repo != nil && head.Repo.ID != 0 && base.ID != 0:
		return head.Repo.ID != base.ID
	case head.Repo != nil && head.Repo.FullName != "":
		return !strings.EqualFold(head.Repo.FullName, base.FullName)
	case head.RepoID != 0 && base.ID != 0:
		return head.RepoID != base.ID
	}
	return true
}

func parseGHPush(kind Kind, body []byte) (Event, error) {
	where := string(kind) + " push"
	var p ghPush
	e, err := decodeRepo(where, body, &p)
	if err != nil {
		return Event{}, err
	}
	e, ok, err := pushed(e, where, p.Ref)
	switch {
	case err != nil:
		return Event{}, err
	case p.Deleted || isZero(p.After):
		return Event{}, ignored("%s push deleting %q starts no build", kind, clip(p.Ref))
	case !ok:
		return Event{}, ignored("%s push to %q starts no build", kind, clip(p.Ref))
	}
	e.Sender = sender(p.Sender.Login, p.Pusher.Login)
	return withCommit(e, where, "after", p.After)
}

func parseGHPullRequest(kind Kind, body []byte, builds ...string) (Event, error) {
	where := string(kind) + " pull_request"
	var p ghPullRequest
	e, err := decodeRepo(where, body, &p)
	switch {
	case err != nil:
		return Event{}, err
	case p.Action == "":
		return Event{}, missing(where, "action")
	case !slices.Contains(builds, p.Action):
		return Event{}, ignored("%s pull_request action %q starts no build", kind, clip(p.Action))
	case p.Number <= 0:
		return Event{}, missing(where, "number")
	case p.PullRequest == nil:
		return Event{}, missing(where, "pull_request")
	}
	head := p.PullRequest.Head
	e.Sender, e.Fork = sender(p.Sender.Login), p.fork()
	return pullRequest(e, where, p.Number, "pull_request.head.ref", head.Ref, "pull_request.head.sha", head.SHA)
}

// GitLab.

type glProject struct {
	Project *struct {
		PathWithNamespace string `json:"path_with_namespace"`
		GitHTTPURL        string `json:"git_http_url"`
		GitSSHURL         string `json:"git_ssh_url"`
	} `json:"project"`
}

func (p *glProject) repo(where string) (Event, error) {
	if p.Project == nil {
		return Event{}, missing(where, "project")
	}
	r := p.Project
	return checkRepo(where, "project.path_with_namespace", r.PathWithNamespace, r.GitHTTPURL, r.GitSSHURL)
}

type glPush struct {
	glProject
	ObjectKind   string `json:"object_kind"`
	Ref          string `json:"ref"`
	After        string `json:"after"`
	CheckoutSHA  string `json:"checkout_sha"` // null when the ref is deleted
	UserUsername string `json:"user_username"`
}

type glMergeRequest struct {
	glProject
	ObjectKind string `json:"object_kind"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	Attrs *struct {
		IID             int    `json:"iid"`
		SourceProjectID int64  `json:"source_project_id"`
		TargetProjectID int64  `json:"target_project_id"`
		Action          string `json:"action"`
		SourceBranch    string `json:"source_branch"`
		Oldrev          string `json:"oldrev"` // only when the update pushed commits
		LastCommit      struct {
			ID string `json:"id"`
		} `json:"last_commit"`
	} `json:"object_attributes"`
}

// objectKind checks that the body is the event its header says.
func objectKind(where, got, want string) error {
	if got == "" {
		return missing(where, "object_kind")
	}
	if got != want {
		return malformed("%s: \"object_kind\" is %q, not %q", where, clip(got), want)
	}
	return nil
}

func parseGLPush(event, kind string, body []byte) (Event, error) {
	where := "gitlab " + event
	var p glPush
	if err := decode(where, body, &p); err != nil {
		return Event{}, err
	}
	if err := objectKind(where, p.ObjectKind, kind); err != nil {
		return Event{}, err
	}
	e, err := p.repo(where)
	if err != nil {
		return Event{}, err
	}
	e, ok, err := pushed(e, where, p.Ref)
	switch {
	case err != nil:
		return Event{}, err
	case p.CheckoutSHA == "" && p.After == "":
		return Event{}, missing(where, "checkout_sha")
	case p.CheckoutSHA == "" || isZero(p.After):
		return Event{}, ignored("gitlab push deleting %q starts no build", clip(p.Ref))
	case !ok:
		return Event{}, ignored("gitlab push to %q starts no build", clip(p.Ref))
	}
	e.Sender = sender(p.UserUsername)
	return withCommit(e, where, "checkout_sha", p.CheckoutSHA)
}

func parseGLMergeRequest(body []byte) (Event, error) {
	const where = "gitlab Merge Request Hook"
	var p glMergeRequest
	if err := decode(where, body, &p); err != nil {
		return Event{}, err
	}
	if err := objectKind(where, p.ObjectKind, "merge_request"); err != nil {
		return Event{}, err
	}
	e, err := p.repo(where)
	a := p.Attrs
	switch {
	case err != nil:
		return Event{}, err
	case a == nil:
		return Event{}, missing(where, "object_attributes")
	case a.Action == "":
		return Event{}, missing(where, "object_attributes.action")
	case a.Action == "update" && a.Oldrev == "":
		// A title, label or assignee change: the code is the same.
		return Event{}, ignored("gitlab merge request update without new commits starts no build")
	case a.Action != "open" && a.Action != "reopen" && a.Action != "update":
		return Event{}, ignored("gitlab merge request action %q starts no build", clip(a.Action))
	case a.IID <= 0:
		return Event{}, missing(where, "object_attributes.iid")
	}
	e.Sender = sender(p.User.Username)
	e.Fork = a.SourceProjectID == 0 || a.SourceProjectID != a.TargetProjectID
	return pullRequest(e, where, a.IID, "object_attributes.source_branch", a.SourceBranch,
		"object_attributes.last_commit.id", a.LastCommit.ID)
}

// Bitbucket Cloud.

type bbRepository struct {
	Repository *struct {
		FullName string `json:"full_name"`
		Links    struct {
			HTML struct {
				Href string `json:"href"`
			} `json:"html"`
			Clone []struct {
				Href string `json:"href"`
			} `json:"clone"`
		} `json:"links"`
	} `json:"repository"`
}

func (p *bbRepository) repo(where string) (Event, error) {
	if p.Repository == nil {
		return Event{}, missing(where, "repository")
	}
	r := p.Repository
	urls := []string{r.Links.HTML.Href}
	for _, c := range r.Links.Clone {
		urls = append(urls, c.Href)
	}
	return checkRepo(where, "repository.full_name", r.FullName, urls...)
}

type bbActor struct {
	Username string `json:"username"`
	Nickname string `json:"nickname"` // where privacy rules removed the username
}

type bbPush struct {
	bbRepository
	Actor bbActor `json:"actor"`
	Push  *struct {
		Changes []struct {
			New *struct { // null when the change deletes the ref
				Type   string `json:"type"`
				Name   string `json:"name"`
				Target struct {
					Hash string `json:"hash"`
				} `json:"target"`
			} `json:"new"`
		} `json:"changes"`
	} `json:"push"`
}

type bbPullRequest struct {
	bbRepository
	Actor       bbActor `json:"actor"`
	PullRequest *struct {
		ID     int `json:"id"`
		Source struct {
			Branch struct {
				Name string `json:"name"`
			} `json:"branch"`
			Commit struct {
				Hash string `json:"hash"`
			} `json:"commit"`
			Repository bbRepoName `json:"repository"`
		} `json:"source"`
		Destination struct {
			Repository bbRepoName `json:"repository"`
		} `json:"destination"`
	} `json:"pullrequest"`
}

type bbRepoName struct {
	FullName string `json:"full_name"`
}

func parseBBPush(body []byte) (Event, error) {
	const where = "bitbucket repo:push"
	var p bbPush
	e, err := decodeRepo(where, body, &p)
	switch {
	case err != nil:
		return Event{}, err
	case p.Push == nil || len(p.Push.Changes) == 0:
		return Event{}, missing(where, "push.changes")
	}
	// One push may move several refs; build the last one it leaves standing.
	changes := p.Push.Changes
	i := len(changes) - 1
	for i >= 0 && changes[i].New == nil {
		i--
	}
	if i < 0 {
		return Event{}, ignored("bitbucket push deleting branches or tags starts no build")
	}
	n := changes[i].New
	field := fmt.Sprintf("push.changes[%d].new", i)
	switch n.Type {
	case "branch":
		e.Kind, e.Branch = Push, n.Name
		err = checkName(where, field+".name", "branch", n.Name)
	case "tag", "annotated_tag":
		e.Kind, e.Tag = Tag, n.Name
		err = checkName(where, field+".name", "tag", n.Name)
	case "":
		err = missing(where, field+".type")
	default:
		return Event{}, ignored("bitbucket push of a %q starts no build", clip(n.Type))
	}
	if err != nil {
		return Event{}, err
	}
	e.Sender = sender(p.Actor.Username, p.Actor.Nickname)
	return withCommit(e, where, field+".target.hash", n.Target.Hash)
}

func parseBBPullRequest(event string, body []byte) (Event, error) {
	where := "bitbucket " + event
	var p bbPullRequest
	e, err := decodeRepo(where, body, &p)
	pr := p.PullRequest
	switch {
	case err != nil:
		return Event{}, err
	case pr == nil:
		return Event{}, missing(where, "pullrequest")
	case pr.ID <= 0:
		return Event{}, missing(where, "pullrequest.id")
	}
	e.Sender = sender(p.Actor.Username, p.Actor.Nickname)
	src, dst := pr.Source.Repository.FullName, pr.Destination.Repository.FullName
	e.Fork = src == "" || !strings.EqualFold(src, dst)
	return pullRequest(e, where, pr.ID, "pullrequest.source.branch.name", pr.Source.Branch.Name,
		"pullrequest.source.commit.hash", pr.Source.Commit.Hash)
}
