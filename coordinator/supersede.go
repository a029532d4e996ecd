package coordinator

import (
	"context"
	"errors"
)

// supersede cancels what a forge event's build b makes pointless: the
// builds of the same repository and branch, or pull request, that earlier
// events queued and that have not ended. The default branch and tags are
// never superseded (a build there may be deploying), nor builds a person
// triggered, nor any of a repository that keeps them (KeepSuperseded).
//
// Which of two racing deliveries is newer is decided by creation (then
// id), so a late older one cancels nothing newer. A cancel that fails is
// logged: the older build then runs to its end, as it would have anyway.
func (c *Coordinator) supersede(ctx context.Context, repo Repo, b Build) {
	if repo.KeepSuperseded || b.Source.Tag != "" || b.Source.Branch == "" {
		return
	}
	f := BuildFilter{Repo: b.Repo, Active: true, Branch: b.Source.Branch, PullRequest: b.PullRequest}
	if b.PullRequest == 0 && b.Source.Branch == defaultBranchOf(repo) {
		return
	}
	older, err := c.cfg.Store.ListBuilds(ctx, f)
	if err != nil {
		c.log.Warn("could not look for the builds a new one supersedes", "build", b.ID, "error", err)
		return
	}
	for _, o := range older {
		if o.Forge == "" || o.PullRequest != b.PullRequest || !queuedBefore(o, b) {
			continue
		}
		err := c.cancel(ctx, o.ID, b.ID)
		switch {
		case err == nil:
			c.log.Info("build superseded", "build", o.ID, "by", b.ID, "repo", b.Repo, "branch", b.Source.Branch, "pull-request", b.PullRequest)
		case !errors.Is(err, ErrEnded):
			c.log.Warn("could not cancel a superseded build", "build", o.ID, "by", b.ID, "error", err)
		}
	}
}

// queuedBefore says whether a was created before b (by time, then id).
func queuedBefore(a, b Build) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return a.ID < b.ID
}

// defaultBranchOf is the repository's default branch.
func defaultBranchOf(r Repo) string {
	if r.DefaultBranch == "" {
		return DefaultBranch
	}
	return r.DefaultBranch
}

// supersededMessage is the message of a build canceled for a newer one.
func supersededMessage(by string) string { return "superseded by build " + by }
