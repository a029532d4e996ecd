package forge

import (
	"slices"
	"strings"
)

// GitHub: its push and pull_request payloads, which Gitea and Forgejo
// follow too.

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
