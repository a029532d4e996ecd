package forge

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// Payloads modelled on each forge's documented examples, trimmed of fields
// nothing reads (but keeping some, as the forges send them).

const githubPush = `{
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
  "repository": {
    "id": 186853002,
    "name": "hello-world",
    "full_name": "octo-org/hello-world",
    "private": false,
    "owner": {"name": "octo-org", "login": "octo-org", "id": 6811672},
    "html_url": "https://github.com/octo-org/hello-world",
    "clone_url": "https://github.com/octo-org/hello-world.git",
    "ssh_url": "git@github.com:octo-org/hello-world.git",
    "default_branch": "main"
  },
  "pusher": {"name": "octocat", "email": "octocat@github.com"},
  "sender": {"login": "octocat", "id": 583231, "type": "User"},
  "created": false,
  "deleted": false,
  "forced": false,
  "base_ref": null,
  "compare": "https://github.com/octo-org/hello-world/compare/6113728f27ae...0d1a26e67d8f",
  "commits": [{
    "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "message": "Update README.md",
    "timestamp": "2019-05-15T15:20:30-07:00",
    "author": {"name": "Codertocat", "email": "21031067+Codertocat@users.noreply.github.com", "username": "Codertocat"},
    "added": [], "removed": [], "modified": ["README.md"]
  }],
  "head_commit": {
    "id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
    "message": "Update README.md",
    "timestamp": "2019-05-15T15:20:30-07:00"
  }
}`

const githubPullRequest = `{
  "action": "opened",
  "number": 2,
  "pull_request": {
    "url": "https://api.github.com/repos/octo-org/hello-world/pulls/2",
    "id": 279147437,
    "number": 2,
    "state": "open",
    "title": "Update the README with new information.",
    "user": {"login": "Codertocat", "id": 21031067},
    "draft": false,
    "head": {
      "label": "Codertocat:changes",
      "ref": "changes",
      "sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
      "repo": {"full_name": "Codertocat/hello-world"}
    },
    "base": {
      "label": "octo-org:main",
      "ref": "main",
      "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
    },
    "merged": false
  },
  "repository": {
    "id": 186853002,
    "full_name": "octo-org/hello-world",
    "clone_url": "https://github.com/octo-org/hello-world.git",
    "ssh_url": "git@github.com:octo-org/hello-world.git"
  },
  "sender": {"login": "Codertocat", "id": 21031067, "type": "User"}
}`

const githubPing = `{
  "zen": "Responsive is better than fast.",
  "hook_id": 109948940,
  "hook": {"type": "Repository", "id": 109948940, "active": true, "events": ["push", "pull_request"],
    "config": {"content_type": "json", "insecure_ssl": "0", "url": "https://ci.example.com/webhook/github"}},
  "repository": {
    "id": 186853002,
    "full_name": "octo-org/hello-world",
    "clone_url": "https://github.com/octo-org/hello-world.git",
    "ssh_url": "git@github.com:octo-org/hello-world.git"
  },
  "sender": {"login": "octocat", "id": 583231}
}`

const githubIssues = `{
  "action": "opened",
  "issue": {"number": 1, "title": "Spelling error in the README file", "state": "open"},
  "repository": {"full_name": "octo-org/hello-world", "clone_url": "https://github.com/octo-org/hello-world.git"},
  "sender": {"login": "Codertocat"}
}`

const gitlabPush = `{
  "object_kind": "push",
  "event_name": "push",
  "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
  "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
  "ref": "refs/heads/master",
  "ref_protected": true,
  "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
  "user_id": 4,
  "user_name": "John Smith",
  "user_username": "jsmith",
  "user_email": "john@example.com",
  "project_id": 15,
  "project": {
    "id": 15,
    "name": "Diaspora",
    "web_url": "http://example.com/mike/diaspora",
    "git_ssh_url": "git@example.com:mike/diaspora.git",
    "git_http_url": "http://example.com/mike/diaspora.git",
    "namespace": "Mike",
    "visibility_level": 0,
    "path_with_namespace": "mike/diaspora",
    "default_branch": "master"
  },
  "commits": [{
    "id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
    "message": "fixed readme",
    "timestamp": "2012-01-03T23:36:29+02:00",
    "author": {"name": "GitLab dev user", "email": "gitlabdev@dv6700.(none)"},
    "added": ["CHANGELOG"], "modified": ["app/controller/application.rb"], "removed": []
  }],
  "total_commits_count": 1
}`

const gitlabTagPush = `{
  "object_kind": "tag_push",
  "event_name": "tag_push",
  "before": "0000000000000000000000000000000000000000",
  "after": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
  "ref": "refs/tags/v1.0.0",
  "ref_protected": true,
  "checkout_sha": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
  "message": "Tag message",
  "user_id": 1,
  "user_name": "John Smith",
  "user_username": "jsmith",
  "project_id": 1,
  "project": {
    "id": 1,
    "name": "Example",
    "web_url": "http://example.com/jsmith/example",
    "git_ssh_url": "git@example.com:jsmith/example.git",
    "git_http_url": "http://example.com/jsmith/example.git",
    "path_with_namespace": "jsmith/example",
    "default_branch": "master"
  },
  "commits": [],
  "total_commits_count": 0
}`

const gitlabMergeRequest = `{
  "object_kind": "merge_request",
  "event_type": "merge_request",
  "user": {"id": 1, "name": "Administrator", "username": "root", "email": "admin@example.com"},
  "project": {
    "id": 1,
    "name": "Gitlab Test",
    "web_url": "http://example.com/gitlabhq/gitlab-test",
    "git_ssh_url": "git@example.com:gitlabhq/gitlab-test.git",
    "git_http_url": "http://example.com/gitlabhq/gitlab-test.git",
    "path_with_namespace": "gitlabhq/gitlab-test",
    "default_branch": "master"
  },
  "object_attributes": {
    "id": 99,
    "iid": 1,
    "target_branch": "master",
    "source_branch": "ms-viewport",
    "source_project_id": 14,
    "target_project_id": 14,
    "title": "MS-Viewport",
    "state": "opened",
    "merge_status": "unchecked",
    "url": "http://example.com/diaspora/merge_requests/1",
    "last_commit": {
      "id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      "message": "fixed readme",
      "timestamp": "2012-01-03T23:36:29+02:00",
      "author": {"name": "GitLab dev user", "email": "gitlabdev@dv6700.(none)"}
    },
    "work_in_progress": false,
    "action": "open"
  },
  "labels": [],
  "changes": {}
}`

const giteaPush = `{
  "ref": "refs/heads/develop",
  "before": "28e1879d029cb852e4844d9c718537df08844e03",
  "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
  "compare_url": "http://localhost:3000/gitea/webhooks/compare/28e1879d029cb852e4844d9c718537df08844e03...bffeb74224043ba2feb48d137756c8a9331c449a",
  "commits": [{
    "id": "bffeb74224043ba2feb48d137756c8a9331c449a",
    "message": "Webhooks Yay!",
    "url": "http://localhost:3000/gitea/webhooks/commit/bffeb74224043ba2feb48d137756c8a9331c449a",
    "author": {"name": "Gitea", "email": "someone@gitea.io", "username": "gitea"},
    "timestamp": "2017-03-13T13:52:11-04:00"
  }],
  "repository": {
    "id": 140,
    "owner": {"id": 1, "login": "gitea", "full_name": "Gitea", "username": "gitea"},
    "name": "webhooks",
    "full_name": "gitea/webhooks",
    "private": false,
    "fork": false,
    "html_url": "http://localhost:3000/gitea/webhooks",
    "ssh_url": "ssh://gitea@localhost:2222/gitea/webhooks.git",
    "clone_url": "http://localhost:3000/gitea/webhooks.git",
    "default_branch": "master"
  },
  "pusher": {"id": 1, "login": "gitea", "full_name": "Gitea", "username": "gitea"},
  "sender": {"id": 1, "login": "gitea", "full_name": "Gitea", "username": "gitea"}
}`

const giteaPullRequest = `{
  "action": "opened",
  "number": 7,
  "pull_request": {
    "id": 31,
    "url": "http://localhost:3000/gitea/webhooks/pulls/7",
    "number": 7,
    "user": {"id": 2, "login": "alice", "username": "alice"},
    "title": "Add a README",
    "state": "open",
    "head": {
      "label": "readme",
      "ref": "readme",
      "sha": "4c8e3f2a9b1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f",
      "repo_id": 140
    },
    "base": {"label": "master", "ref": "master", "sha": "28e1879d029cb852e4844d9c718537df08844e03", "repo_id": 140},
    "merged": false
  },
  "repository": {
    "id": 140,
    "full_name": "gitea/webhooks",
    "html_url": "http://localhost:3000/gitea/webhooks",
    "ssh_url": "ssh://gitea@localhost:2222/gitea/webhooks.git",
    "clone_url": "http://localhost:3000/gitea/webhooks.git"
  },
  "sender": {"id": 2, "login": "alice", "username": "alice"}
}`

const bitbucketPush = `{
  "actor": {"display_name": "Emma Smith", "uuid": "{8b1a3d0e-5c2f-4a7b-9e6d-1f0c2b3a4d5e}", "nickname": "emma", "type": "user", "account_id": "557058:4f1e2d3c"},
  "repository": {
    "type": "repository",
    "full_name": "acme/widgets",
    "name": "widgets",
    "uuid": "{2c9e6f1a-7b3d-4e8a-a5c0-9d1e2f3a4b5c}",
    "links": {
      "self": {"href": "https://api.bitbucket.org/2.0/repositories/acme/widgets"},
      "html": {"href": "https://bitbucket.org/acme/widgets"}
    },
    "scm": "git",
    "is_private": true
  },
  "push": {
    "changes": [{
      "old": {"type": "branch", "name": "main", "target": {"type": "commit", "hash": "9fceb02d0ae598e95dc970b74767f19372d61af8"}},
      "new": {
        "type": "branch",
        "name": "main",
        "target": {
          "type": "commit",
          "hash": "03f4a7270240708834de475bcf21532d6134777e",
          "message": "Fix the widget count\n",
          "date": "2024-03-05T10:12:01+00:00"
        }
      },
      "created": false,
      "forced": false,
      "closed": false,
      "truncated": false
    }]
  }
}`

const bitbucketPullRequest = `{
  "actor": {"display_name": "Emma Smith", "nickname": "emma", "type": "user", "account_id": "557058:4f1e2d3c"},
  "repository": {
    "type": "repository",
    "full_name": "acme/widgets",
    "links": {"html": {"href": "https://bitbucket.org/acme/widgets"}}
  },
  "pullrequest": {
    "id": 12,
    "title": "Count widgets right",
    "state": "OPEN",
    "author": {"display_name": "Emma Smith", "nickname": "emma"},
    "source": {
      "branch": {"name": "feature/count"},
      "commit": {"type": "commit", "hash": "d3c8f2b4a7e1"},
      "repository": {"full_name": "acme/widgets"}
    },
    "destination": {
      "branch": {"name": "main"},
      "commit": {"type": "commit", "hash": "03f4a7270240"},
      "repository": {"full_name": "acme/widgets"}
    }
  }
}`

// edit replaces each old in s with its new, panicking when an old is not
// there, so that a case cannot test the unedited payload by mistake.
func edit(s string, oldNew ...string) string {
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			panic("edit: " + oldNew[i] + " is not in the payload")
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	return s
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

var (
	githubURLs    = []string{"https://github.com/octo-org/hello-world.git", "git@github.com:octo-org/hello-world.git"}
	gitlabURLs    = []string{"http://example.com/mike/diaspora.git", "git@example.com:mike/diaspora.git"}
	giteaURLs     = []string{"http://localhost:3000/gitea/webhooks.git", "ssh://gitea@localhost:2222/gitea/webhooks.git"}
	bitbucketURLs = []string{"https://bitbucket.org/acme/widgets"}
)

type parseCase struct {
	name string
	kind Kind
	h    http.Header
	body string
	// One of:
	want      Event  // the event read
	ignored   string // in the *Ignored's Reason
	malformed string // in the error wrapping ErrMalformed
}

func parseCases() []parseCase {
	gh := func(event string) http.Header { return hdr("X-GitHub-Event", event) }
	gl := func(event string) http.Header { return hdr("X-Gitlab-Event", event) }
	gt := func(event string) http.Header { return hdr("X-Gitea-Event", event) }
	bb := func(event string) http.Header { return hdr("X-Event-Key", event) }
	ghAfter := `"after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",`
	long := strings.Repeat("x", 256)

	return []parseCase{
		// GitHub.
		{name: "github push", kind: GitHub, h: gh("push"), body: githubPush,
			want: Event{Kind: Push, Repo: "octo-org/hello-world", CloneURLs: githubURLs, Branch: "main",
				Commit: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", Sender: "octocat"}},
		// Hostile: a NUL byte in a name (no git ref or login holds one).
		{name: "github push, a NUL in the branch", kind: GitHub, h: gh("push"),
			body: edit(githubPush, `"refs/heads/main"`, `"refs/heads/ma\u0000in"`), malformed: "holds a control character"},
		{name: "github push, a NUL in the repository's name", kind: GitHub, h: gh("push"),
			body: edit(githubPush, `"full_name": "octo-org/hello-world"`, `"full_name": "octo-org/hello\u0000world"`), malformed: "holds a control character"},
		{name: "github tag push", kind: GitHub, h: gh("push"),
			body: edit(githubPush, `"refs/heads/main"`, `"refs/tags/v1.2.0"`, `"created": false`, `"created": true`),
			want: Event{Kind: Tag, Repo: "octo-org/hello-world", CloneURLs: githubURLs, Tag: "v1.2.0",
				Commit: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", Sender: "octocat"}},
		{name: "github push, upper-case commit", kind: GitHub, h: gh("push"),
			body: edit(githubPush, ghAfter, `"after": "0D1A26E67D8F5EAF1F6BA5C57FC3C7D91AC0FD1C",`),
			want: Event{Kind: Push, Repo: "octo-org/hello-world", CloneURLs: githubURLs, Branch: "main",
				Commit: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", Sender: "octocat"}},
		{name: "github branch deletion", kind: GitHub, h: gh("push"),
			body:    edit(githubPush, ghAfter, `"after": "0000000000000000000000000000000000000000",`, `"deleted": false`, `"deleted": true`),
			ignored: `github push deleting "refs/heads/main" starts no build`},
		{name: "github deleted flag alone", kind: GitHub, h: gh("push"),
			body:    edit(githubPush, `"deleted": false`, `"deleted": true`),
			ignored: `deleting "refs/heads/main"`},
		{name: "github push to another ref", kind: GitHub, h: gh("push"),
			body:    edit(githubPush, `"refs/heads/main"`, `"refs/notes/commits"`),
			ignored: `github push to "refs/notes/commits" starts no build`},
		{name: "github push without after", kind: GitHub, h: gh("push"),
			body: edit(githubPush, ghAfter, ""), malformed: `github push: "after" is missing`},
		{name: "github push, after not a commit", kind: GitHub, h: gh("push"),
			body: edit(githubPush, ghAfter, `"after": "main",`), malformed: `"after" is not a commit id`},
		{name: "github push, after too long", kind: GitHub, h: gh("push"),
			body:      edit(githubPush, ghAfter, `"after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c00",`),
			malformed: `"after" is not a commit id`},
		{name: "github push without ref", kind: GitHub, h: gh("push"),
			body: edit(githubPush, `"ref": "refs/heads/main",`, ""), malformed: `github push: "ref" is missing`},
		{name: "github push, branch starts with -", kind: GitHub, h: gh("push"),
			body: edit(githubPush, `"refs/heads/main"`, `"refs/heads/--upload-pack=x"`), malformed: `starts with '-'`},
		{name: "github push, branch with a control character", kind: GitHub, h: gh("push"),
			body: edit(githubPush, `"refs/heads/main"`, `"refs/heads/ma\u001bin"`), malformed: `control character`},
		{name: "github push, branch too long", kind: GitHub, h: gh("push"),
			body: edit(githubPush, `"refs/heads/main"`, `"refs/heads/`+long+`"`), malformed: `longer than 255 bytes`},
		{name: "github push, empty branch", kind: GitHub, h: gh("push"),
			body: edit(githubPush, `"refs/heads/main"`, `"refs/heads/"`), malformed: `"ref" has no branch name`},
		{name: "github push without repository", kind: GitHub, h: gh("push"),
			body:      `{"ref": "refs/heads/main", "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}`,
			malformed: `github push: "repository" is missing`},
		{name: "github push without full name", kind: GitHub, h: gh("push"),
			body:      edit(githubPush, `"full_name": "octo-org/hello-world",`, ""),
			malformed: `"repository.full_name" is missing`},
		{name: "github push, not JSON", kind: GitHub, h: gh("push"),
			body: `{"ref": "refs/heads/main", "after": `, malformed: "github push: the body is not JSON"},
		{name: "github push, a JSON array", kind: GitHub, h: gh("push"),
			body: `[1, 2]`, malformed: "github push: the body is not a JSON object"},
		{name: "github push, empty body", kind: GitHub, h: gh("push"),
			body: ``, malformed: "not a JSON object"},
		{name: "github push, ref a number", kind: GitHub, h: gh("push"),
			body: edit(githubPush, `"ref": "refs/heads/main"`, `"ref": 7`), malformed: `"ref" is a JSON number, not a string`},
		{name: "github pull request opened", kind: GitHub, h: gh("pull_request"), body: githubPullRequest,
			want: Event{Kind: PullRequest, Repo: "octo-org/hello-world", CloneURLs: githubURLs, Branch: "changes",
				Commit: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", Number: 2, Sender: "Codertocat", Fork: true}},
		{name: "github pull request synchronize", kind: GitHub, h: gh("pull_request"),
			body: edit(githubPullRequest, `"action": "opened"`, `"action": "synchronize"`),
			want: Event{Kind: PullRequest, Repo: "octo-org/hello-world", CloneURLs: githubURLs, Branch: "changes",
				Commit: "ec26c3e57ca3a959ca5aad62de7213c562f8c821", Number: 2, Sender: "Codertocat", Fork: true}},
		{name: "github pull request closed", kind: GitHub, h: gh("pull_request"),
			body:    edit(githubPullRequest, `"action": "opened"`, `"action": "closed"`),
			ignored: `github pull_request action "closed" starts no build`},
		{name: "github pull request labeled", kind: GitHub, h: gh("pull_request"),
			body: edit(githubPullRequest, `"action": "opened"`, `"action": "labeled"`), ignored: `"labeled"`},
		{name: "github pull request without head sha", kind: GitHub, h: gh("pull_request"),
			body:      edit(githubPullRequest, `"sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",`, ""),
			malformed: `github pull_request: "pull_request.head.sha" is missing`},
		{name: "github pull request without number", kind: GitHub, h: gh("pull_request"),
			body: edit(githubPullRequest, `"number": 2,`, ""), malformed: `"number" is missing`},
		{name: "github pull request, number a string", kind: GitHub, h: gh("pull_request"),
			body: edit(githubPullRequest, `"number": 2,`, `"number": "2",`), malformed: `"number" is a JSON string, not an integer`},
		{name: "github ping", kind: GitHub, h: gh("ping"), body: githubPing,
			ignored: `github event "ping" starts no build`},
		{name: "github issues", kind: GitHub, h: gh("issues"), body: githubIssues,
			ignored: `github event "issues" starts no build`},
		{name: "github issues, not JSON", kind: GitHub, h: gh("issues"), body: `<xml/>`,
			malformed: "github issues: the body is not a JSON object"},
		{name: "github without event header", kind: GitHub, h: hdr(), body: githubPush,
			malformed: "the X-GitHub-Event header is missing"},

		// GitLab.
		{name: "gitlab push", kind: GitLab, h: gl("Push Hook"), body: gitlabPush,
			want: Event{Kind: Push, Repo: "mike/diaspora", CloneURLs: gitlabURLs, Branch: "master",
				Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Sender: "jsmith"}},
		{name: "gitlab tag push", kind: GitLab, h: gl("Tag Push Hook"), body: gitlabTagPush,
			want: Event{Kind: Tag, Repo: "jsmith/example",
				CloneURLs: []string{"http://example.com/jsmith/example.git", "git@example.com:jsmith/example.git"},
				Tag:       "v1.0.0", Commit: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7", Sender: "jsmith"}},
		{name: "gitlab branch deletion", kind: GitLab, h: gl("Push Hook"),
			body: edit(gitlabPush,
				`"after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"`, `"after": "0000000000000000000000000000000000000000"`,
				`"checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"`, `"checkout_sha": null`),
			ignored: `gitlab push deleting "refs/heads/master" starts no build`},
		{name: "gitlab tag deletion", kind: GitLab, h: gl("Tag Push Hook"),
			body: edit(gitlabTagPush,
				`"after": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"`, `"after": "0000000000000000000000000000000000000000"`,
				`"checkout_sha": "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"`, `"checkout_sha": null`),
			ignored: `deleting "refs/tags/v1.0.0"`},
		{name: "gitlab push without checkout_sha or after", kind: GitLab, h: gl("Push Hook"),
			body: edit(gitlabPush,
				`"after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",`, "",
				`"checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",`, ""),
			malformed: `gitlab Push Hook: "checkout_sha" is missing`},
		{name: "gitlab push, checkout_sha not a commit", kind: GitLab, h: gl("Push Hook"),
			body:      edit(gitlabPush, `"checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"`, `"checkout_sha": "da15"`),
			malformed: `"checkout_sha" is not a commit id`},
		{name: "gitlab push, body of a tag push", kind: GitLab, h: gl("Push Hook"), body: gitlabTagPush,
			malformed: `"object_kind" is "tag_push", not "push"`},
		{name: "gitlab push without project", kind: GitLab, h: gl("Push Hook"),
			body:      `{"object_kind": "push", "ref": "refs/heads/master", "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}`,
			malformed: `"project" is missing`},
		{name: "gitlab push, not JSON", kind: GitLab, h: gl("Push Hook"), body: `{"object_kind": push}`,
			malformed: "gitlab Push Hook: the body is not JSON"},
		{name: "gitlab merge request opened", kind: GitLab, h: gl("Merge Request Hook"), body: gitlabMergeRequest,
			want: Event{Kind: PullRequest, Repo: "gitlabhq/gitlab-test",
				CloneURLs: []string{"http://example.com/gitlabhq/gitlab-test.git", "git@example.com:gitlabhq/gitlab-test.git"},
				Branch:    "ms-viewport", Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Number: 1, Sender: "root"}},
		{name: "gitlab merge request updated with commits", kind: GitLab, h: gl("Merge Request Hook"),
			body: edit(gitlabMergeRequest, `"action": "open"`,
				`"action": "update", "oldrev": "95790bf891e76fee5e1747ab589903a6a1f80f22"`),
			want: Event{Kind: PullRequest, Repo: "gitlabhq/gitlab-test",
				CloneURLs: []string{"http://example.com/gitlabhq/gitlab-test.git", "git@example.com:gitlabhq/gitlab-test.git"},
				Branch:    "ms-viewport", Commit: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Number: 1, Sender: "root"}},
		{name: "gitlab merge request retitled", kind: GitLab, h: gl("Merge Request Hook"),
			body:    edit(gitlabMergeRequest, `"action": "open"`, `"action": "update"`),
			ignored: "gitlab merge request update without new commits starts no build"},
		{name: "gitlab merge request closed", kind: GitLab, h: gl("Merge Request Hook"),
			body:    edit(gitlabMergeRequest, `"action": "open"`, `"action": "close"`),
			ignored: `gitlab merge request action "close" starts no build`},
		{name: "gitlab merge request merged", kind: GitLab, h: gl("Merge Request Hook"),
			body: edit(gitlabMergeRequest, `"action": "open"`, `"action": "merge"`), ignored: `"merge"`},
		{name: "gitlab merge request without last commit", kind: GitLab, h: gl("Merge Request Hook"),
			body:      edit(gitlabMergeRequest, `"id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",`, ""),
			malformed: `gitlab Merge Request Hook: "object_attributes.last_commit.id" is missing`},
		{name: "gitlab merge request without source branch", kind: GitLab, h: gl("Merge Request Hook"),
			body:      edit(gitlabMergeRequest, `"source_branch": "ms-viewport",`, ""),
			malformed: `"object_attributes.source_branch" has no branch name`},
		{name: "gitlab note", kind: GitLab, h: gl("Note Hook"),
			body:    `{"object_kind": "note", "project": {"path_with_namespace": "mike/diaspora"}}`,
			ignored: `gitlab event "Note Hook" starts no build`},

		// Gitea and Forgejo.
		{name: "gitea push", kind: Gitea, h: gt("push"), body: giteaPush,
			want: Event{Kind: Push, Repo: "gitea/webhooks", CloneURLs: giteaURLs, Branch: "develop",
				Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Sender: "gitea"}},
		{name: "forgejo push", kind: Gitea, h: hdr("X-Forgejo-Event", "push"), body: giteaPush,
			want: Event{Kind: Push, Repo: "gitea/webhooks", CloneURLs: giteaURLs, Branch: "develop",
				Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Sender: "gitea"}},
		{name: "gitea push, pusher without sender", kind: Gitea, h: gt("push"),
			body: edit(giteaPush, `"sender": {"id": 1, "login": "gitea"`, `"sender": {"id": 1`),
			want: Event{Kind: Push, Repo: "gitea/webhooks", CloneURLs: giteaURLs, Branch: "develop",
				Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Sender: "gitea"}},
		{name: "gitea tag push", kind: Gitea, h: gt("push"),
			body: edit(giteaPush, `"refs/heads/develop"`, `"refs/tags/v0.3.0"`),
			want: Event{Kind: Tag, Repo: "gitea/webhooks", CloneURLs: giteaURLs, Tag: "v0.3.0",
				Commit: "bffeb74224043ba2feb48d137756c8a9331c449a", Sender: "gitea"}},
		{name: "gitea branch deletion", kind: Gitea, h: gt("push"),
			body:    edit(giteaPush, `"after": "bffeb74224043ba2feb48d137756c8a9331c449a"`, `"after": "0000000000000000000000000000000000000000"`),
			ignored: `gitea push deleting "refs/heads/develop" starts no build`},
		{name: "gitea delete event", kind: Gitea, h: gt("delete"),
			body:    `{"ref": "develop", "ref_type": "branch", "repository": {"full_name": "gitea/webhooks"}}`,
			ignored: `gitea event "delete" starts no build`},
		{name: "gitea push without after", kind: Gitea, h: gt("push"),
			body:      edit(giteaPush, `"after": "bffeb74224043ba2feb48d137756c8a9331c449a",`, ""),
			malformed: `gitea push: "after" is missing`},
		{name: "gitea pull request opened", kind: Gitea, h: gt("pull_request"), body: giteaPullRequest,
			want: Event{Kind: PullRequest, Repo: "gitea/webhooks", CloneURLs: giteaURLs, Branch: "readme",
				Commit: "4c8e3f2a9b1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f", Number: 7, Sender: "alice"}},
		{name: "gitea pull request synchronized", kind: Gitea, h: gt("pull_request"),
			body: edit(giteaPullRequest, `"action": "opened"`, `"action": "synchronized"`),
			want: Event{Kind: PullRequest, Repo: "gitea/webhooks", CloneURLs: giteaURLs, Branch: "readme",
				Commit: "4c8e3f2a9b1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f", Number: 7, Sender: "alice"}},
		{name: "gitea pull request closed", kind: Gitea, h: gt("pull_request"),
			body:    edit(giteaPullRequest, `"action": "opened"`, `"action": "closed"`),
			ignored: `gitea pull_request action "closed" starts no build`},
		{name: "gitea pull request without head sha", kind: Gitea, h: gt("pull_request"),
			body:      edit(giteaPullRequest, `"sha": "4c8e3f2a9b1d0e7f6a5b4c3d2e1f0a9b8c7d6e5f",`, ""),
			malformed: `gitea pull_request: "pull_request.head.sha" is missing`},
		{name: "gitea pull request, not JSON", kind: Gitea, h: gt("pull_request"), body: `{"action": "opened",}`,
			malformed: "gitea pull_request: the body is not JSON"},
		{name: "gitea without event header", kind: Gitea, h: hdr("X-GitHub-Event", "push"), body: giteaPush,
			malformed: "gitea delivery: the X-Gitea-Event (or X-Forgejo-Event) header is missing"},

		// Bitbucket Cloud.
		{name: "bitbucket push", kind: Bitbucket, h: bb("repo:push"), body: bitbucketPush,
			want: Event{Kind: Push, Repo: "acme/widgets", CloneURLs: bitbucketURLs, Branch: "main",
				Commit: "03f4a7270240708834de475bcf21532d6134777e", Sender: "emma"}},
		{name: "bitbucket push, clone links and username", kind: Bitbucket, h: bb("repo:push"),
			body: edit(bitbucketPush,
				`"html": {"href": "https://bitbucket.org/acme/widgets"}`,
				`"html": {"href": "https://bitbucket.org/acme/widgets"},
      "clone": [{"name": "https", "href": "https://bitbucket.org/acme/widgets.git"}, {"name": "ssh", "href": "git@bitbucket.org:acme/widgets.git"}]`,
				`"nickname": "emma",`, `"nickname": "emma", "username": "emma-smith",`),
			want: Event{Kind: Push, Repo: "acme/widgets",
				CloneURLs: []string{"https://bitbucket.org/acme/widgets", "https://bitbucket.org/acme/widgets.git", "git@bitbucket.org:acme/widgets.git"},
				Branch:    "main", Commit: "03f4a7270240708834de475bcf21532d6134777e", Sender: "emma-smith"}},
		{name: "bitbucket tag push", kind: Bitbucket, h: bb("repo:push"),
			body: edit(bitbucketPush, `"old": {"type": "branch", "name": "main", "target": {"type": "commit", "hash": "9fceb02d0ae598e95dc970b74767f19372d61af8"}}`, `"old": null`,
				`"type": "branch",
        "name": "main"`, `"type": "tag",
        "name": "v2.1.0"`),
			want: Event{Kind: Tag, Repo: "acme/widgets", CloneURLs: bitbucketURLs, Tag: "v2.1.0",
				Commit: "03f4a7270240708834de475bcf21532d6134777e", Sender: "emma"}},
		{name: "bitbucket push, last change standing", kind: Bitbucket, h: bb("repo:push"),
			body: edit(bitbucketPush, `"truncated": false
    }]`, `"truncated": false
    }, {
      "old": null,
      "new": {"type": "tag", "name": "v2.2.0", "target": {"type": "commit", "hash": "5e2a7c1f0b9d8e3a6c4f2b1d0e9a8c7b6f5e4d3c"}}
    }, {
      "old": {"type": "branch", "name": "old-feature", "target": {"type": "commit", "hash": "9fceb02d0ae598e95dc970b74767f19372d61af8"}},
      "new": null,
      "closed": true
    }]`),
			want: Event{Kind: Tag, Repo: "acme/widgets", CloneURLs: bitbucketURLs, Tag: "v2.2.0",
				Commit: "5e2a7c1f0b9d8e3a6c4f2b1d0e9a8c7b6f5e4d3c", Sender: "emma"}},
		{name: "bitbucket branch deletion", kind: Bitbucket, h: bb("repo:push"),
			body: `{"actor": {"nickname": "emma"}, "repository": {"full_name": "acme/widgets"},
			  "push": {"changes": [{"old": {"type": "branch", "name": "gone", "target": {"hash": "9fceb02d0ae598e95dc970b74767f19372d61af8"}}, "new": null, "closed": true}]}}`,
			ignored: "bitbucket push deleting branches or tags starts no build"},
		{name: "bitbucket push without changes", kind: Bitbucket, h: bb("repo:push"),
			body:      `{"repository": {"full_name": "acme/widgets"}, "push": {"changes": []}}`,
			malformed: `"push.changes" is missing`},
		{name: "bitbucket push without hash", kind: Bitbucket, h: bb("repo:push"),
			body:      edit(bitbucketPush, `"hash": "03f4a7270240708834de475bcf21532d6134777e",`, ""),
			malformed: `bitbucket repo:push: "push.changes[0].new.target.hash" is missing`},
		{name: "bitbucket push without repository", kind: Bitbucket, h: bb("repo:push"),
			body: `{"push": {"changes": []}}`, malformed: `"repository" is missing`},
		{name: "bitbucket pull request created", kind: Bitbucket, h: bb("pullrequest:created"), body: bitbucketPullRequest,
			want: Event{Kind: PullRequest, Repo: "acme/widgets", CloneURLs: bitbucketURLs, Branch: "feature/count",
				Commit: "d3c8f2b4a7e1", Number: 12, Sender: "emma"}},
		{name: "bitbucket pull request updated", kind: Bitbucket, h: bb("pullrequest:updated"), body: bitbucketPullRequest,
			want: Event{Kind: PullRequest, Repo: "acme/widgets", CloneURLs: bitbucketURLs, Branch: "feature/count",
				Commit: "d3c8f2b4a7e1", Number: 12, Sender: "emma"}},
		{name: "bitbucket pull request merged", kind: Bitbucket, h: bb("pullrequest:fulfilled"),
			body:    edit(bitbucketPullRequest, `"state": "OPEN"`, `"state": "MERGED"`),
			ignored: `bitbucket event "pullrequest:fulfilled" starts no build`},
		{name: "bitbucket pull request declined", kind: Bitbucket, h: bb("pullrequest:rejected"),
			body: edit(bitbucketPullRequest, `"state": "OPEN"`, `"state": "DECLINED"`), ignored: `"pullrequest:rejected"`},
		{name: "bitbucket pull request, hash too short", kind: Bitbucket, h: bb("pullrequest:created"),
			body:      edit(bitbucketPullRequest, `"hash": "d3c8f2b4a7e1"`, `"hash": "d3c8f2"`),
			malformed: `"pullrequest.source.commit.hash" is not a commit id`},
		{name: "bitbucket pull request without id", kind: Bitbucket, h: bb("pullrequest:created"),
			body: edit(bitbucketPullRequest, `"id": 12,`, ""), malformed: `"pullrequest.id" is missing`},
		{name: "bitbucket pull request, not JSON", kind: Bitbucket, h: bb("pullrequest:created"), body: `{"pullrequest": {`,
			malformed: "bitbucket pullrequest:created: the body is not JSON"},
		{name: "bitbucket without event key", kind: Bitbucket, h: hdr(), body: bitbucketPush,
			malformed: "the X-Event-Key header is missing"},
	}
}

func TestParse(t *testing.T) {
	for _, c := range parseCases() {
		t.Run(c.name, func(t *testing.T) {
			got, err := Parse(c.kind, c.h, []byte(c.body))
			var ig *Ignored
			switch {
			case c.ignored != "":
				if !errors.As(err, &ig) || !strings.Contains(ig.Reason, c.ignored) {
					t.Fatalf("Parse: got %+v, %v; want ignored: %s", got, err, c.ignored)
				}
				if err.Error() != ig.Reason {
					t.Errorf("Error() = %q, want the Reason %q", err.Error(), ig.Reason)
				}
			case c.malformed != "":
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.malformed) {
					t.Fatalf("Parse: got %+v, %v; want ErrMalformed saying %s", got, err, c.malformed)
				}
			default:
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("Parse:\n got %+v\nwant %+v", got, c.want)
				}
			}
			if err != nil && got.Repo != "" {
				t.Errorf("Parse returned an error and an event %+v", got)
			}
		})
	}
}

func TestParseUnknownKind(t *testing.T) {
	_, err := Parse("svn", hdr("X-GitHub-Event", "push"), []byte(githubPush))
	if err == nil || errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `unknown forge "svn"`) {
		t.Errorf("Parse(svn): %v, want an unknown forge error", err)
	}
}

func TestRepoOf(t *testing.T) {
	for _, c := range []struct {
		name      string
		kind      Kind
		body      string
		want      string
		wantURLs  []string
		malformed string
	}{
		{name: "github push", kind: GitHub, body: githubPush, want: "octo-org/hello-world", wantURLs: githubURLs},
		{name: "github ping", kind: GitHub, body: githubPing, want: "octo-org/hello-world", wantURLs: githubURLs},
		{name: "gitlab merge request", kind: GitLab, body: gitlabMergeRequest, want: "gitlabhq/gitlab-test",
			wantURLs: []string{"http://example.com/gitlabhq/gitlab-test.git", "git@example.com:gitlabhq/gitlab-test.git"}},
		{name: "gitea pull request", kind: Gitea, body: giteaPullRequest, want: "gitea/webhooks", wantURLs: giteaURLs},
		{name: "bitbucket push", kind: Bitbucket, body: bitbucketPush, want: "acme/widgets", wantURLs: bitbucketURLs},
		{name: "same clone URL once", kind: GitHub,
			body: `{"repository": {"full_name": "a/b", "clone_url": "https://x/a/b.git", "ssh_url": "https://x/a/b.git"}}`,
			want: "a/b", wantURLs: []string{"https://x/a/b.git"}},
		// Only the repository is read before the delivery is verified:
		// the rest may be anything.
		{name: "rest unread", kind: GitHub,
			body: `{"number": "x", "after": 7, "repository": {"full_name": "a/b"}}`, want: "a/b"},
		{name: "a few clone URLs", kind: Bitbucket,
			body: `{"repository": {"full_name": "a/b", "links": {"clone": [` + strings.Repeat(`{"href": "x"}, {"href": "y"}, `, 1000) +
				`{"href": "h0"}, {"href": "h1"}, {"href": "h2"}, {"href": "h3"}, {"href": "h4"}, {"href": "h5"}, {"href": "h6"}]}}}`,
			want: "a/b", wantURLs: []string{"x", "y", "h0", "h1", "h2", "h3", "h4", "h5"}},
		{name: "github without repository", kind: GitHub, body: `{"zen": "x"}`, malformed: `github delivery: "repository" is missing`},
		{name: "github without full name", kind: GitHub, body: `{"repository": {"clone_url": "https://x/a/b.git"}}`,
			malformed: `"repository.full_name" is missing`},
		{name: "github, repository a string", kind: GitHub, body: `{"repository": "a/b"}`,
			malformed: `"repository" is a JSON string, not an object`},
		{name: "gitlab with repository but no project", kind: GitLab,
			body: `{"repository": {"name": "Diaspora", "url": "git@example.com:mike/diaspora.git"}}`, malformed: `"project" is missing`},
		{name: "gitea, not JSON", kind: Gitea, body: `{"repository": `, malformed: "gitea delivery: the body is not JSON"},
		{name: "bitbucket, not an object", kind: Bitbucket, body: `"acme/widgets"`, malformed: "not a JSON object"},
		{name: "bitbucket, name with a newline", kind: Bitbucket, body: `{"repository": {"full_name": "acme/\nwidgets"}}`,
			malformed: "control character"},
	} {
		t.Run(c.name, func(t *testing.T) {
			name, urls, err := RepoOf(c.kind, []byte(c.body))
			if c.malformed != "" {
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.malformed) {
					t.Fatalf("RepoOf: %q, %q, %v; want ErrMalformed saying %s", name, urls, err, c.malformed)
				}
				return
			}
			if err != nil || name != c.want || !reflect.DeepEqual(urls, c.wantURLs) {
				t.Errorf("RepoOf: %q, %q, %v; want %q, %q", name, urls, err, c.want, c.wantURLs)
			}
		})
	}
	if _, _, err := RepoOf("", []byte(githubPush)); err == nil || errors.Is(err, ErrMalformed) {
		t.Errorf("RepoOf of no kind: %v, want an unknown forge error", err)
	}
}

func TestVerify(t *testing.T) {
	// The example in GitHub's documentation on validating deliveries.
	const (
		docSecret = "It's a Secret to Everybody"
		docBody   = "Hello, World!"
		docSig    = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	)
	wrong := strings.Repeat("0", 64)
	for _, c := range []struct {
		name   string
		kind   Kind
		h      http.Header
		body   string
		secret string
		want   error // nil, ErrUnsigned or ErrSignature
		say    string
	}{
		{"github", GitHub, hdr("X-Hub-Signature-256", "sha256="+docSig), docBody, docSecret, nil, ""},
		{"github wrong secret", GitHub, hdr("X-Hub-Signature-256", "sha256="+docSig), docBody, "It's a secret to everybody", ErrSignature, "does not match"},
		{"github tampered body", GitHub, hdr("X-Hub-Signature-256", "sha256="+docSig), "Hello, World?", docSecret, ErrSignature, ""},
		{"github wrong signature", GitHub, hdr("X-Hub-Signature-256", "sha256="+wrong), docBody, docSecret, ErrSignature, ""},
		{"github without prefix", GitHub, hdr("X-Hub-Signature-256", docSig), docBody, docSecret, ErrSignature, `is not sha256=hex`},
		{"github not hex", GitHub, hdr("X-Hub-Signature-256", "sha256=xyz"), docBody, docSecret, ErrSignature, ""},
		{"github sha1 only", GitHub, hdr("X-Hub-Signature", "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"), docBody, docSecret, ErrUnsigned, "X-Hub-Signature-256 header is missing"},
		{"github unsigned", GitHub, hdr(), docBody, docSecret, ErrUnsigned, ""},
		{"github empty secret", GitHub, hdr("X-Hub-Signature-256", "sha256="+docSig), docBody, "", ErrSignature, "no webhook secret"},

		{"gitea", Gitea, hdr("X-Gitea-Signature", docSig), docBody, docSecret, nil, ""},
		{"forgejo", Gitea, hdr("X-Forgejo-Signature", docSig), docBody, docSecret, nil, ""},
		{"gitea as github", Gitea, hdr("X-Hub-Signature-256", "sha256="+docSig), docBody, docSecret, nil, ""},
		{"gitea with a prefix", Gitea, hdr("X-Gitea-Signature", "sha256="+docSig), docBody, docSecret, ErrSignature, ""},
		{"gitea wrong, github right", Gitea, hdr("X-Gitea-Signature", wrong, "X-Hub-Signature-256", "sha256="+docSig), docBody, docSecret, ErrSignature, "X-Gitea-Signature"},
		{"gitea tampered body", Gitea, hdr("X-Gitea-Signature", docSig), "Hello, World", docSecret, ErrSignature, ""},
		{"gitea unsigned", Gitea, hdr(), docBody, docSecret, ErrUnsigned, "X-Forgejo-Signature"},
		{"gitea empty secret", Gitea, hdr("X-Gitea-Signature", docSig), docBody, "", ErrSignature, "no webhook secret"},

		{"gitlab", GitLab, hdr("X-Gitlab-Token", "s3cret"), docBody, "s3cret", nil, ""},
		{"gitlab wrong token", GitLab, hdr("X-Gitlab-Token", "s3cret!"), docBody, "s3cret", ErrSignature, "X-Gitlab-Token"},
		{"gitlab prefix of the secret", GitLab, hdr("X-Gitlab-Token", "s3cre"), docBody, "s3cret", ErrSignature, ""},
		{"gitlab unsigned", GitLab, hdr(), docBody, "s3cret", ErrUnsigned, "X-Gitlab-Token"},
		{"gitlab empty secret", GitLab, hdr("X-Gitlab-Token", ""), docBody, "", ErrSignature, "no webhook secret"},

		{"bitbucket", Bitbucket, hdr("X-Hub-Signature", "sha256="+docSig), docBody, docSecret, nil, ""},
		{"bitbucket wrong secret", Bitbucket, hdr("X-Hub-Signature", "sha256="+docSig), docBody, "other", ErrSignature, ""},
		{"bitbucket tampered body", Bitbucket, hdr("X-Hub-Signature", "sha256="+docSig), docBody + "\n", docSecret, ErrSignature, ""},
		{"bitbucket with github's header", Bitbucket, hdr("X-Hub-Signature-256", "sha256="+docSig), docBody, docSecret, ErrUnsigned, "X-Hub-Signature header"},
		{"bitbucket empty secret", Bitbucket, hdr(), docBody, "", ErrSignature, "no webhook secret"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Verify(c.kind, c.h, []byte(c.body), c.secret)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.say) {
				t.Fatalf("Verify: %v, want %v saying %q", err, c.want, c.say)
			}
		})
	}
	err := Verify("svn", hdr("X-Hub-Signature-256", "sha256="+docSig), []byte(docBody), docSecret)
	if err == nil || errors.Is(err, ErrSignature) || errors.Is(err, ErrUnsigned) {
		t.Errorf("Verify(svn): %v, want an unknown forge error", err)
	}
}

func TestSignVerify(t *testing.T) {
	body := []byte(githubPush)
	for _, kind := range Kinds() {
		h := http.Header{}
		Sign(kind, h, body, "s3cret")
		if err := Verify(kind, h, body, "s3cret"); err != nil {
			t.Errorf("%s: Verify after Sign: %v", kind, err)
		}
		if err := Verify(kind, h, body, "other"); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: Verify with another secret: %v, want ErrSignature", kind, err)
		}
		if err := Verify(kind, h, append(body, ' '), "s3cret"); kind != GitLab && !errors.Is(err, ErrSignature) {
			t.Errorf("%s: Verify of a tampered body: %v, want ErrSignature", kind, err)
		}
	}
	h := http.Header{}
	Sign("svn", h, body, "s3cret")
	if len(h) != 0 {
		t.Errorf("Sign(svn) set %v", h)
	}
}

func TestDeliveryID(t *testing.T) {
	for _, c := range []struct {
		kind Kind
		h    http.Header
		want string
	}{
		{GitHub, hdr("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"), "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		{GitLab, hdr("X-Gitlab-Event-UUID", "13792a34-cac6-4fda-95a8-c58e00a3954e"), "13792a34-cac6-4fda-95a8-c58e00a3954e"},
		{Gitea, hdr("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"), "f6266f16-1bf3-46a5-9ea4-602e06ead473"},
		{Gitea, hdr("X-Forgejo-Delivery", "a0b6ebb5-1f6e-4c0e-9d7e-b9b3f1bd4c2a"), "a0b6ebb5-1f6e-4c0e-9d7e-b9b3f1bd4c2a"},
		{Bitbucket, hdr("X-Request-UUID", "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f60", "X-Hook-UUID", "{hook}"), "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f60"},
		{GitHub, hdr("X-Gitlab-Event-UUID", "13792a34"), ""},
		{Bitbucket, hdr(), ""},
		{"svn", hdr("X-GitHub-Delivery", "x"), ""},
	} {
		if got := DeliveryID(c.kind, c.h); got != c.want {
			t.Errorf("DeliveryID(%s, %v) = %q, want %q", c.kind, c.h, got, c.want)
		}
	}
}

// A pull request from another repository than the one delivered for is a
// fork's, and so is one whose delivery does not name its source: its builds
// get no secrets.
func TestPullRequestsFromForks(t *testing.T) {
	gh := func(event string) http.Header { return hdr("X-GitHub-Event", event) }
	gl := func(event string) http.Header { return hdr("X-Gitlab-Event", event) }
	gt := func(event string) http.Header { return hdr("X-Gitea-Event", event) }
	bb := func(event string) http.Header { return hdr("X-Event-Key", event) }
	cases := []struct {
		name string
		kind Kind
		h    http.Header
		body string
		fork bool
	}{
		{"github, from a fork", GitHub, gh("pull_request"), githubPullRequest, true},
		{"github, same repository", GitHub, gh("pull_request"),
			edit(githubPullRequest, `"Codertocat/hello-world"`, `"octo-org/hello-world"`), false},
		{"github, same name another id", GitHub, gh("pull_request"),
			edit(githubPullRequest, `"repo": {"full_name": "Codertocat/hello-world"}`, `"repo": {"id": 7, "full_name": "octo-org/hello-world"}`), true},
		{"github, same id", GitHub, gh("pull_request"),
			edit(githubPullRequest, `"repo": {"full_name": "Codertocat/hello-world"}`, `"repo": {"id": 186853002, "full_name": "Codertocat/hello-world"}`), false},
		{"github, source deleted", GitHub, gh("pull_request"),
			edit(githubPullRequest, `"repo": {"full_name": "Codertocat/hello-world"}`, `"repo": null`), true},
		{"gitea, same repository", Gitea, gt("pull_request"), giteaPullRequest, false},
		{"gitea, from a fork", Gitea, gt("pull_request"), edit(giteaPullRequest, `"repo_id": 140
    },`, `"repo_id": 141
    },`), true},
		{"gitlab, same project", GitLab, gl("Merge Request Hook"), gitlabMergeRequest, false},
		{"gitlab, from a fork", GitLab, gl("Merge Request Hook"), edit(gitlabMergeRequest, `"source_project_id": 14`, `"source_project_id": 15`), true},
		{"gitlab, source not named", GitLab, gl("Merge Request Hook"), edit(gitlabMergeRequest, `"source_project_id": 14,`, ``), true},
		{"bitbucket, same repository", Bitbucket, bb("pullrequest:created"), bitbucketPullRequest, false},
		{"bitbucket, from a fork", Bitbucket, bb("pullrequest:created"), edit(bitbucketPullRequest, `"repository": {"full_name": "acme/widgets"}
    },
    "destination"`, `"repository": {"full_name": "mallory/widgets"}
    },
    "destination"`), true},
		{"bitbucket, source not named", Bitbucket, bb("pullrequest:created"), edit(bitbucketPullRequest, `,
      "repository": {"full_name": "acme/widgets"}
    },
    "destination"`, `
    },
    "destination"`), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := Parse(c.kind, c.h, []byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if e.Kind != PullRequest || e.Fork != c.fork {
				t.Errorf("got %s fork %v, want a pull request, fork %v", e.Kind, e.Fork, c.fork)
			}
		})
	}
}
