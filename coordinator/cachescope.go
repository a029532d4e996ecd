package coordinator

import "strconv"

// CacheScope is which caches a build's jobs write (Scope, only) and read
// (Scope, or Fallback for a cache Scope does not hold yet). Builds of one
// scope never change what a build of another scope restores.
type CacheScope struct {
	Scope    string `json:"scope,omitempty"`
	Fallback string `json:"fallback,omitempty"`
}

// DefaultBranch is a repository's default branch when none was given.
const DefaultBranch = "main"

// CacheScopeOf decides a build's cache scope from what it builds: a pull
// request its own scope "pr:N" and a tag "tag:T", each reading nothing
// else (a fork's pull request must not read what the default branch
// cached either); a branch "branch:B", reading the default branch's
// caches while it has none of its own. A build of no branch, tag or pull
// request builds the default branch's head.
func CacheScopeOf(src Source, pullRequest int, defaultBranch string) CacheScope {
	if defaultBranch == "" {
		defaultBranch = DefaultBranch
	}
	switch {
	case pullRequest > 0:
		return CacheScope{Scope: "pr:" + strconv.Itoa(pullRequest)}
	case src.Tag != "":
		return CacheScope{Scope: "tag:" + src.Tag}
	case src.Branch == "" || src.Branch == defaultBranch:
		return CacheScope{Scope: "branch:" + defaultBranch}
	}
	return CacheScope{Scope: "branch:" + src.Branch, Fallback: "branch:" + defaultBranch}
}
