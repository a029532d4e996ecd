package forge

import (
	"errors"
	"net/http"
	"testing"
)

// FuzzParse feeds arbitrary bodies and event names to Parse and RepoOf:
// neither may panic, and an Event must name its repository and a commit.
func FuzzParse(f *testing.F) {
	// The last is no forge: its errors must be errors too.
	kinds := append(Kinds(), "svn")
	index := map[Kind]uint8{}
	for i, k := range kinds {
		index[k] = uint8(i)
	}
	for _, c := range parseCases() {
		event := ""
		for _, name := range []string{"X-GitHub-Event", "X-Gitlab-Event", "X-Gitea-Event", "X-Forgejo-Event", "X-Event-Key"} {
			if v := c.h.Get(name); v != "" {
				event = v
			}
		}
		f.Add(index[c.kind], event, []byte(c.body))
	}
	f.Add(uint8(4), "push", []byte(githubPush))

	f.Fuzz(func(t *testing.T, k uint8, event string, body []byte) {
		kind := kinds[int(k)%len(kinds)]
		known := kind != "svn"
		// Each forge reads its own header: set them all.
		h := http.Header{}
		for _, name := range []string{"X-GitHub-Event", "X-Gitlab-Event", "X-Gitea-Event", "X-Event-Key"} {
			h.Set(name, event)
		}

		name, urls, repoErr := RepoOf(kind, body)
		switch {
		case repoErr == nil && name == "":
			t.Fatalf("RepoOf: no name, no error (URLs %q)", urls)
		case repoErr != nil && known && !errors.Is(repoErr, ErrMalformed):
			t.Fatalf("RepoOf: %v, want ErrMalformed", repoErr)
		case repoErr == nil && !known:
			t.Fatalf("RepoOf of an unknown forge: %q, no error", name)
		}

		e, err := Parse(kind, h, body)
		var ig *Ignored
		if err != nil {
			if known && !errors.Is(err, ErrMalformed) && !errors.As(err, &ig) {
				t.Fatalf("Parse: %v, want ErrMalformed or *Ignored", err)
			}
			if !known && (errors.Is(err, ErrMalformed) || errors.As(err, &ig)) {
				t.Fatalf("Parse of an unknown forge: %v, want an unknown forge error", err)
			}
			return
		}
		if !known {
			t.Fatalf("Parse of an unknown forge: %+v, no error", e)
		}
		if e.Repo == "" {
			t.Fatalf("Parse: event without a repository: %+v", e)
		}
		if n := len(e.Commit); n < 7 || n > 40 || !isHex(e.Commit) {
			t.Fatalf("Parse: commit %q is not 7 to 40 hex digits", e.Commit)
		}
		switch e.Kind {
		case Push:
			if e.Branch == "" {
				t.Fatalf("Parse: push without a branch: %+v", e)
			}
		case Tag:
			if e.Tag == "" {
				t.Fatalf("Parse: tag push without a tag: %+v", e)
			}
		case PullRequest:
			if e.Branch == "" || e.Number <= 0 {
				t.Fatalf("Parse: pull request without a branch or number: %+v", e)
			}
		default:
			t.Fatalf("Parse: event of kind %q", e.Kind)
		}
		// The handler finds the repository by RepoOf, then builds Parse's:
		// they must be the same one.
		if repoErr != nil || name != e.Repo {
			t.Fatalf("RepoOf says %q, %v; Parse says %q", name, repoErr, e.Repo)
		}
	})
}
