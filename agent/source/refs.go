package source

import (
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// Refs and commit names: what Fetch asks the remote for and where it keeps
// what it got.

// refSpec fetches ref, forced, to where trackingRef keeps it.
func refSpec(ref plumbing.ReferenceName) config.RefSpec {
	return config.RefSpec("+" + ref.String() + ":" + trackingRef(ref).String())
}

// trackingRef is where a fetched ref is stored: branches as remote-tracking
// branches, tags as tags.
func trackingRef(ref plumbing.ReferenceName) plumbing.ReferenceName {
	if ref.IsBranch() {
		return plumbing.NewRemoteReferenceName(remoteName, ref.Short())
	}
	return ref
}

// findRef returns the ref named name among refs, or nil.
func findRef(refs []*plumbing.Reference, name plumbing.ReferenceName) *plumbing.Reference {
	for _, r := range refs {
		if r.Name() == name {
			return r
		}
	}
	return nil
}

// refAt returns a branch or tag whose head is the commit want (full or
// abbreviated), preferring the branch asked, then other branches, then tags.
func refAt(refs []*plumbing.Reference, want, branch string) plumbing.ReferenceName {
	var best plumbing.ReferenceName
	rank := 0
	for _, r := range refs {
		if r.Type() != plumbing.HashReference || !strings.HasPrefix(r.Hash().String(), want) {
			continue
		}
		name := plumbing.ReferenceName(strings.TrimSuffix(r.Name().String(), "^{}"))
		n := 0
		switch {
		case branch != "" && name == plumbing.NewBranchReferenceName(branch):
			n = 3
		case name.IsBranch():
			n = 2
		case name.IsTag():
			n = 1
		}
		if n > rank {
			best, rank = name, n
		}
	}
	return best
}

// parseCommit checks that c is a hex object name, full or abbreviated.
func parseCommit(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	c = strings.ToLower(strings.TrimSpace(c))
	ok := len(c) >= 4 && len(c) <= 40
	for _, r := range c {
		if !strings.ContainsRune("0123456789abcdef", r) {
			ok = false
		}
	}
	if !ok {
		return "", fmt.Errorf("invalid commit %q: want 4 to 40 hex digits", c)
	}
	return c, nil
}

// endpointURL turns an existing local path into an absolute one (what
