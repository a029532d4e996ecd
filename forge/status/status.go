// Package status reports a build's state to the forge the build came from
// (a commit status on GitHub, GitLab, Gitea/Forgejo or Bitbucket Cloud),
// through each forge's REST API. Client.Send reports one status, retrying;
// Reporter sends them in the background so builds never wait on a forge.
package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/forge"
)

// State is a build's state as reported.
type State string

const (
	Pending  State = "pending"
	Running  State = "running"
	Success  State = "success"
	Failure  State = "failure"
	Error    State = "error"
	Canceled State = "canceled"
)

// Target says where to report: one repository at one forge.
type Target struct {
	Kind forge.Kind
	// APIURL is the forge's API base URL. Empty means the public service's:
	// https://api.github.com, https://gitlab.com/api/v4 or
	// https://api.bitbucket.org/2.0. Gitea has no one public service, so
	// it is required there (e.g. https://gitea.example.com/api/v1).
	APIURL string
	// Repo is the repository's full name: owner/name (GitLab: the path
	// with its namespace, group/.../name; Bitbucket: workspace/repo_slug).
	Repo  string
	Token string // API token
}

// Status is one report.
type Status struct {
	Commit string // full sha
	State  State
	URL    string // link to the build's page (required by Bitbucket)
	// Description is short, e.g. "build 0123 succeeded in 42s"; it is cut
	// to 140 characters, GitHub's limit.
	Description string
	// Context is the check's name, e.g. "monkeyci" (the default): GitHub's
	// and Gitea's context, GitLab's name, Bitbucket's key and name.
	Context string
}

const (
	defaultContext  = "monkeyci"
	maxDescription  = 140 // characters; GitHub rejects longer descriptions
	maxBodyExcerpt  = 200 // bytes of a failed response's body kept in errors
	defaultTimeout  = 10 * time.Second
	defaultAttempts = 5
	defaultBackoff  = time.Second
	maxBackoff      = 30 * time.Second
)

// Client sends statuses over HTTP. Zero values take defaults.
type Client struct {
	HTTP   *http.Client // default: a client with a 10 s timeout
	Logger hclog.Logger
	// Attempts (default 5) are spaced by an exponential backoff from
	// Backoff (default 1s, doubling, capped at 30s, with jitter). A 4xx
	// other than 408 and 429 is not retried: it will not get better. A 429
	// (or GitHub's rate-limit 403) honours Retry-After when given.
	Attempts int
	Backoff  time.Duration
}

// Send reports one status, retrying as the Client says, until ctx ends. It
// returns the last error, naming the forge, repository and the HTTP status
// with an excerpt of the response's body, or nil.
func (c *Client) Send(ctx context.Context, t Target, s Status) error {
	req, err := build(t, s)
	if err != nil {
		return fmt.Errorf("status: report to %s %s: %w", t.Kind, t.Repo, err)
	}
	hc := c.HTTP
	if hc == nil {
		// A fresh client still shares http.DefaultTransport's connections.
		hc = &http.Client{Timeout: defaultTimeout}
	}
	log := c.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = defaultAttempts
	}

	for attempt := 1; ; attempt++ {
		wait, retry, err := c.post(ctx, hc, req)
		if err == nil {
			return nil
		}
		if retry && attempt < attempts && ctx.Err() == nil {
			if wait < 0 {
				wait = c.backoff(attempt)
			}
			log.Debug("retrying status report", "forge", t.Kind, "repo", t.Repo,
				"commit", s.Commit, "attempt", attempt, "wait", wait, "error", err)
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w; last error: %w", ctx.Err(), err)
		}
		return fmt.Errorf("status: report %s to %s %s failed after %d attempt(s): %w",
			s.State, t.Kind, t.Repo, attempt, err)
	}
}

// httpError is a forge's answer that was not a success.
type httpError struct {
	Code int
	Body string // at most maxBodyExcerpt bytes
}

func (e *httpError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s", e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// post makes one attempt. wait is how long the forge asked us to wait
// before retrying (Retry-After), or negative for the usual backoff.
func (c *Client) post(ctx context.Context, hc *http.Client, r request) (wait time.Duration, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(r.body))
	if err != nil {
		return -1, false, err
	}
	req.Header = r.header.Clone()
	resp, err := hc.Do(req)
	if err != nil {
		return -1, true, err // the network, or the forge's overload: try again
	}
	defer func() {
		// Read a little more so the connection can be reused.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return -1, false, nil
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyExcerpt))
	herr := &httpError{Code: resp.StatusCode, Body: strings.TrimSpace(strings.ToValidUTF8(string(excerpt), ""))}

	wait = -1
	if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		wait = d
	}
	switch code := resp.StatusCode; {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return wait, true, herr
	case code == http.StatusForbidden && wait >= 0:
		// GitHub's secondary rate limit is a 403 with Retry-After: it
		// gets better by waiting, unlike other 403s.
		return wait, true, herr
	}
	return -1, false, herr
}

// retryAfter reads a Retry-After header: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil {
		if n < 0 {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// backoff is the wait after the given failed attempt (1-based): Backoff
// doubling, capped, with "equal jitter" (half fixed, half random) so
// reporters that failed together do not retry together.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.Backoff
	if d <= 0 {
		d = defaultBackoff
	}
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	half := d / 2
	return half + rand.N(d-half+1)
}

// request is one status report, ready to POST.
type request struct {
	url    string
	header http.Header
	body   []byte
}

// build checks a report and lays it out as the target forge's API wants it.
func build(t Target, s Status) (request, error) {
	if err := validate(t, s); err != nil {
		return request{}, err
	}
	if s.Context == "" {
		s.Context = defaultContext
	}
	s.Description = truncate(s.Description, maxDescription)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "monkeyci")

	var (
		endpoint string
		body     any
	)
	api := strings.TrimRight(t.APIURL, "/")
	owner, name, _ := strings.Cut(t.Repo, "/")
	repoPath := url.PathEscape(owner) + "/" + url.PathEscape(name)
	switch t.Kind {
	case forge.GitHub:
		// https://docs.github.com/en/rest/commits/statuses#create-a-commit-status
		if api == "" {
			api = "https://api.github.com"
		}
		endpoint = api + "/repos/" + repoPath + "/statuses/" + s.Commit
		h.Set("Authorization", "Bearer "+t.Token)
		h.Set("Accept", "application/vnd.github+json")
		h.Set("X-GitHub-Api-Version", "2022-11-28")
		body = commitStatus{State: githubState(s.State), TargetURL: s.URL, Description: s.Description, Context: s.Context}
	case forge.Gitea:
		// https://gitea.com/api/swagger#/repository/repoCreateStatus
		endpoint = api + "/repos/" + repoPath + "/statuses/" + s.Commit
		h.Set("Authorization", "token "+t.Token)
		body = commitStatus{State: giteaState(s.State), TargetURL: s.URL, Description: s.Description, Context: s.Context}
	case forge.GitLab:
		// https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit
		if api == "" {
			api = "https://gitlab.com/api/v4"
		}
		// The project id is the whole path, its slashes encoded too.
		endpoint = api + "/projects/" + url.PathEscape(t.Repo) + "/statuses/" + s.Commit
		h.Set("PRIVATE-TOKEN", t.Token)
		body = gitlabStatus{State: gitlabState(s.State), TargetURL: s.URL, Description: s.Description, Name: s.Context}
	case forge.Bitbucket:
		// https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/#api-repositories-workspace-repo-slug-commit-commit-statuses-build-post
		if api == "" {
			api = "https://api.bitbucket.org/2.0"
		}
		endpoint = api + "/repositories/" + repoPath + "/commit/" + s.Commit + "/statuses/build"
		h.Set("Authorization", "Bearer "+t.Token)
		body = bitbucketStatus{Key: s.Context, State: bitbucketState(s.State), URL: s.URL, Name: s.Context, Description: s.Description}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return request{}, fmt.Errorf("encode status: %w", err)
	}
	return request{url: endpoint, header: h, body: b}, nil
}

// commitStatus is GitHub's and Gitea's request body.
type commitStatus struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
	Context     string `json:"context"`
}

type gitlabStatus struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description,omitempty"`
	Name        string `json:"name"`
}

type bitbucketStatus struct {
	Key         string `json:"key"`
	State       string `json:"state"`
	URL         string `json:"url"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// GitHub has no running or canceled state.
func githubState(s State) string {
	switch s {
	case Running:
		return "pending"
	case Canceled:
		return "error"
	}
	return string(s)
}

// Gitea's states are GitHub's (plus warning, unused).
func giteaState(s State) string { return githubState(s) }

func gitlabState(s State) string {
	switch s {
	case Failure, Error:
		return "failed"
	}
	return string(s)
}

func bitbucketState(s State) string {
	switch s {
	case Pending, Running:
		return "INPROGRESS"
	case Success:
		return "SUCCESSFUL"
	case Canceled:
		return "STOPPED"
	}
	return "FAILED"
}

// validate checks a report before anything is sent; errors name the field.
func validate(t Target, s Status) error {
	switch t.Kind {
	case forge.GitHub, forge.GitLab, forge.Bitbucket:
	case forge.Gitea:
		if t.APIURL == "" {
			return errors.New("Target.APIURL is required for gitea (e.g. https://gitea.example.com/api/v1)")
		}
	default:
		return fmt.Errorf("Target.Kind %q is not a known forge", t.Kind)
	}
	if t.APIURL != "" && !strings.HasPrefix(t.APIURL, "https://") && !strings.HasPrefix(t.APIURL, "http://") {
		return fmt.Errorf("Target.APIURL %q is not an http(s) URL", t.APIURL)
	}
	if !validRepo(t.Kind, t.Repo) {
		want := "owner/name"
		switch t.Kind {
		case forge.GitLab:
			want = "group/name (or group/subgroup/name)"
		case forge.Bitbucket:
			want = "workspace/repo_slug"
		}
		return fmt.Errorf("Target.Repo %q is not %s", t.Repo, want)
	}
	if t.Token == "" {
		return errors.New("Target.Token is empty")
	}
	if !validCommit(s.Commit) {
		return fmt.Errorf("Status.Commit %q is not a commit's hex name (7 to 40 digits)", s.Commit)
	}
	switch s.State {
	case Pending, Running, Success, Failure, Error, Canceled:
	default:
		return fmt.Errorf("Status.State %q is not a known state", s.State)
	}
	if t.Kind == forge.Bitbucket && s.URL == "" {
		return errors.New("Status.URL is required by bitbucket (a link to the build)")
	}
	return nil
}

// validRepo checks the owner/name shape: GitLab allows nested groups, the
// others exactly two parts. No part may step out of its place in the URL.
func validRepo(k forge.Kind, repo string) bool {
	parts := strings.Split(repo, "/")
	if len(parts) < 2 || (k != forge.GitLab && len(parts) != 2) {
		return false
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, " \t\r\n?#%\\") {
			return false
		}
	}
	return true
}

func validCommit(c string) bool {
	if len(c) < 7 || len(c) > 40 {
		return false
	}
	for _, r := range c {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f' || 'A' <= r && r <= 'F') {
			return false
		}
	}
	return true
}

// truncate cuts s to at most n characters, marking the cut with "…".
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	runes := []rune(s)
	return string(runes[:n-1]) + "…"
}
