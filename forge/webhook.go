package forge

import (
	"bytes"
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
