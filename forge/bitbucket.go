package forge

import (
	"fmt"
	"strings"
)

// Bitbucket Cloud: its push and pull request payloads.

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
