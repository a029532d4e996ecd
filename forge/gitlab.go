package forge

// GitLab: its push, tag push and merge request payloads.

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
