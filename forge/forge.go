// Package forge understands the forges builds come from (GitHub, GitLab,
// Gitea and Forgejo, Bitbucket): it verifies and reads their webhook
// deliveries into Events. It does no I/O: the coordinator's HTTP handler
// hands it the request's headers and body. Package forge/status reports a
// build's state back to the forge.
package forge

import (
	"fmt"
	"strings"
)

// Kind names a forge.
type Kind string

const (
	GitHub    Kind = "github"
	GitLab    Kind = "gitlab"
	Gitea     Kind = "gitea" // Gitea and Forgejo
	Bitbucket Kind = "bitbucket"
)

// Kinds lists the forges known, in the order help texts show them.
func Kinds() []Kind { return []Kind{GitHub, GitLab, Gitea, Bitbucket} }

// ParseKind reads a forge's name ("forgejo" is Gitea).
func ParseKind(s string) (Kind, error) {
	switch k := Kind(strings.ToLower(strings.TrimSpace(s))); k {
	case GitHub, GitLab, Gitea, Bitbucket:
		return k, nil
	case "forgejo":
		return Gitea, nil
	}
	return "", fmt.Errorf("unknown forge %q: use github, gitlab, gitea (or forgejo) or bitbucket", s)
}

// EventKind is what happened at the forge.
type EventKind string

const (
	Push        EventKind = "push"         // commits pushed to a branch
	Tag         EventKind = "tag"          // a tag pushed
	PullRequest EventKind = "pull-request" // a pull/merge request opened or updated
)

// Event is a webhook delivery that can start a build.
type Event struct {
	Kind EventKind
	// Repo is the repository's full name at the forge: owner/name (GitLab:
	// the path with its namespace, group/subgroup/name).
	Repo string
	// CloneURLs are the repository's clone URLs the delivery names (http
	// and ssh), for matching a repository registered by its URL.
	CloneURLs []string
	// Branch is the pushed branch, or a pull request's source branch.
	Branch string
	// Tag is the pushed tag (Kind Tag).
	Tag string
	// Commit is the full object name of the commit to build.
	Commit string
	// Number is a pull request's number (GitLab: its iid).
	Number int
	// Sender is who caused it (a login or user name), for the build's trigger.
	Sender string
	// Fork is true for a pull request whose source is another repository
	// (a fork), or whose delivery does not show that it is the same one:
	// anyone may open one, so its builds get no secrets.
	Fork bool
}

// Key names the event a delivery is of, whatever its delivery id: its
// kind, its ref (a pull request's number too) and its commit. A forge that
// delivers the same event again (a redelivery from its settings page, a
// retry after a timeout) gives the same key.
func (e Event) Key() string {
	ref := "refs/heads/" + e.Branch
	switch e.Kind {
	case Tag:
		ref = "refs/tags/" + e.Tag
	case PullRequest:
		ref = fmt.Sprintf("pull/%d (%s)", e.Number, e.Branch)
	}
	return string(e.Kind) + " " + ref + " " + e.Commit
}
