package source

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/monkeyci/monkeyci/internal/gittest"
)

// fixture is a non-bare repository built with go-git:
//
//	main:    first -> second        (a.txt "two", b.txt "bee")
//	feature: first -> feat          (f.txt "feat")
//	tag v1:  first -> tagged        (annotated; on no branch)
//
// plus uncommitted changes in its working tree.
type fixture struct {
	path                        string
	first, second, feat, tagged plumbing.Hash
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{path: t.TempDir()}
	r, err := git.PlainInitWithOptions(f.path, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.Main},
	})
	if err != nil {
		t.Fatal(err)
	}
	w, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	when := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	commit := func(msg string, files map[string]string) plumbing.Hash {
		t.Helper()
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(f.path, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Add(name); err != nil {
				t.Fatal(err)
			}
		}
		when = when.Add(time.Minute)
		h, err := w.Commit(msg, &git.CommitOptions{
			Author: &object.Signature{Name: "Test", Email: "test@example.com", When: when},
		})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	checkout := func(branch string, create bool, from plumbing.Hash) {
		t.Helper()
		err := w.Checkout(&git.CheckoutOptions{
			Branch: plumbing.NewBranchReferenceName(branch),
			Create: create,
			Hash:   from,
			Force:  true,
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	f.first = commit("first", map[string]string{"a.txt": "one"})
	f.second = commit("second", map[string]string{"a.txt": "two", "b.txt": "bee"})

	checkout("feature", true, f.first)
	f.feat = commit("feat", map[string]string{"f.txt": "feat"})

	checkout("tmp", true, f.first)
	f.tagged = commit("tagged", map[string]string{"t.txt": "tagged"})
	_, err = r.CreateTag("v1", f.tagged, &git.CreateTagOptions{
		Tagger:  &object.Signature{Name: "Test", Email: "test@example.com", When: when},
		Message: "v1",
	})
	if err != nil {
		t.Fatal(err)
	}

	checkout("main", false, plumbing.ZeroHash)
	if err := r.Storer.RemoveReference(plumbing.NewBranchReferenceName("tmp")); err != nil {
		t.Fatal(err)
	}
	// Uncommitted changes, which must never reach a fetched tree.
	if err := os.WriteFile(filepath.Join(f.path, "a.txt"), []byte("dirty"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.path, "u.txt"), []byte("untracked"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("go-git's file transport runs git-upload-pack; git is not installed")
	}
}

// tree reads the files of a fetched working tree, .git aside.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == ".git" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

func checkTree(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got := tree(t, dir)
	if len(got) != len(want) {
		t.Errorf("files = %v, want %v", got, want)
		return
	}
	for name, content := range want {
		if got[name] != content {
			t.Errorf("%s = %q, want %q (all: %v)", name, got[name], content, got)
		}
	}
}

// checkHead checks what HEAD of the fetched repository is: on branch (or
// detached when branch is empty) at h, with a clean working tree.
func checkHead(t *testing.T, dir, branch string, h plumbing.Hash) {
	t.Helper()
	checkHeadAs(t, dir, branch, h, false)
}

// checkHeadAs checks HEAD as checkHead does, or, detached, that HEAD is
// detached at h and branch (if any) is there too, at h.
func checkHeadAs(t *testing.T, dir, branch string, h plumbing.Hash, detached bool) {
	t.Helper()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	head, err := r.Head()
	if err != nil {
		t.Fatal(err)
	}
	if head.Hash() != h {
		t.Errorf("HEAD = %s, want %s", head.Hash(), h)
	}
	switch {
	case detached && head.Name() != plumbing.HEAD:
		t.Errorf("HEAD is on %s, want detached", head.Name())
	case detached && branch != "":
		if ref, err := r.Reference(plumbing.NewBranchReferenceName(branch), false); err != nil || ref.Hash() != h {
			t.Errorf("branch %s: %v %v, want it at %s", branch, ref, err, h)
		}
	case detached:
	case branch == "" && head.Name() != plumbing.HEAD:
		t.Errorf("HEAD is on %s, want detached", head.Name())
	case branch != "" && head.Name() != plumbing.NewBranchReferenceName(branch):
		t.Errorf("HEAD is on %s, want %s", head.Name(), branch)
	}
	w, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	st, err := w.Status()
	if err != nil {
		t.Fatal(err)
	}
	if !st.IsClean() {
		t.Errorf("working tree not clean:\n%s", st)
	}
}

func isShallow(t *testing.T, dir string) bool {
	t.Helper()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := r.Storer.Shallow()
	if err != nil {
		t.Fatal(err)
	}
	return len(sh) > 0
}

func hasCommit(t *testing.T, dir string, h plumbing.Hash) bool {
	t.Helper()
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.CommitObject(h)
	return err == nil
}

type fetchFunc func(ctx context.Context, src Source, dir string) (string, error)

// fetchers are the two ways a source is fetched: go-git straight into the
// directory, and the git program by way of the agent's mirror (one for
// all of a test's fetches, as deep as go-git's). A mirror's checkout is
// detached, with the branch beside it.
func fetchers(t *testing.T) []struct {
	name     string
	fetch    fetchFunc
	detached bool
} {
	t.Helper()
	needGit(t)
	git, _ := exec.LookPath("git")
	m := &Mirrors{Dir: t.TempDir(), Git: git, Depth: shallowDepth}
	return []struct {
		name     string
		fetch    fetchFunc
		detached bool
	}{{"go-git", Fetch, false}, {"mirror", m.Fetch, true}}
}

func TestFetch(t *testing.T) {
	needGit(t)
	fx := newFixture(t)
	mainFiles := map[string]string{"a.txt": "two", "b.txt": "bee"}

	tests := []struct {
		name    string
		src     func() Source
		want    plumbing.Hash
		branch  string // the branch HEAD is on; "" for detached
		files   map[string]string
		shallow bool
		// The mirror's copy of an older commit is as shallow as the
		// branch fetched before it: its checkout says so, root or not.
		shallowFromMirror bool
		notHolding        []plumbing.Hash // commits the fetch must not have brought
	}{{
		name:       "default branch from a plain path",
		src:        func() Source { return Source{URL: fx.path} },
		want:       fx.second,
		branch:     "main",
		files:      mainFiles,
		shallow:    true,
		notHolding: []plumbing.Hash{fx.feat}, // first comes as second's parent
	}, {
		name:       "branch from a file URL",
		src:        func() Source { return Source{URL: "file://" + fx.path, Branch: "feature"} },
		want:       fx.feat,
		branch:     "feature",
		files:      map[string]string{"a.txt": "one", "f.txt": "feat"},
		shallow:    true,
		notHolding: []plumbing.Hash{fx.second},
	}, {
		name:    "branch head as commit, shallow",
		src:     func() Source { return Source{URL: fx.path, Branch: "main", Commit: fx.second.String()} },
		want:    fx.second,
		files:   mainFiles,
		shallow: true,
	}, {
		name:    "head of another branch as commit, shallow",
		src:     func() Source { return Source{URL: fx.path, Branch: "main", Commit: fx.feat.String()} },
		want:    fx.feat,
		files:   map[string]string{"a.txt": "one", "f.txt": "feat"},
		shallow: true,
	}, {
		name:              "older commit from a plain path",
		src:               func() Source { return Source{URL: fx.path, Branch: "main", Commit: fx.first.String()} },
		want:              fx.first,
		files:             map[string]string{"a.txt": "one"},
		shallowFromMirror: true,
	}, {
		name:              "commit with a branch that does not exist",
		src:               func() Source { return Source{URL: fx.path, Branch: "gone", Commit: fx.first.String()} },
		want:              fx.first,
		files:             map[string]string{"a.txt": "one"},
		shallowFromMirror: true,
	}, {
		name:              "older commit from a file URL",
		src:               func() Source { return Source{URL: "file://" + fx.path, Commit: fx.first.String()} },
		want:              fx.first,
		files:             map[string]string{"a.txt": "one"},
		shallowFromMirror: true,
	}, {
		name:              "abbreviated older commit",
		src:               func() Source { return Source{URL: fx.path, Commit: strings.ToUpper(fx.first.String()[:8])} },
		want:              fx.first,
		files:             map[string]string{"a.txt": "one"},
		shallowFromMirror: true,
	}, {
		name:       "commit only a tag reaches, shallow",
		src:        func() Source { return Source{URL: fx.path, Commit: fx.tagged.String()} },
		want:       fx.tagged,
		files:      map[string]string{"a.txt": "one", "t.txt": "tagged"},
		shallow:    true,
		notHolding: []plumbing.Hash{fx.second, fx.feat},
	}, {
		name:       "annotated tag by name, shallow",
		src:        func() Source { return Source{URL: fx.path, Tag: "v1"} },
		want:       fx.tagged,
		files:      map[string]string{"a.txt": "one", "t.txt": "tagged"},
		shallow:    true,
		notHolding: []plumbing.Hash{fx.second, fx.feat},
	}, {
		name:    "commit wins over tag",
		src:     func() Source { return Source{URL: fx.path, Tag: "v1", Commit: fx.feat.String()} },
		want:    fx.feat,
		files:   map[string]string{"a.txt": "one", "f.txt": "feat"},
		shallow: true,
	}}
	for _, f := range fetchers(t) {
		for _, tt := range tests {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "ws")
				got, err := f.fetch(context.Background(), tt.src(), dir)
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want.String() {
					t.Errorf("Fetch = %s, want %s", got, tt.want)
				}
				checkTree(t, dir, tt.files)
				checkHeadAs(t, dir, tt.branch, tt.want, f.detached)
				if s := isShallow(t, dir); s != (tt.shallow || f.detached && tt.shallowFromMirror) {
					t.Errorf("shallow = %v, want %v", s, tt.shallow)
				}
				// A mirror's checkout borrows all its mirror holds (earlier
				// builds' fetches too): only go-git's fetch is held to this.
				for _, h := range tt.notHolding {
					if f.detached {
						break
					}
					if hasCommit(t, dir, h) {
						t.Errorf("fetched %s, which was not needed", h)
					}
				}
			})
		}
	}
}

func TestFetchRelativePath(t *testing.T) {
	needGit(t)
	fx := newFixture(t)
	t.Chdir(filepath.Dir(fx.path))
	dir := filepath.Join(t.TempDir(), "ws")
	got, err := Fetch(context.Background(), Source{URL: filepath.Base(fx.path)}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got != fx.second.String() {
		t.Errorf("Fetch = %s, want %s", got, fx.second)
	}
	checkTree(t, dir, map[string]string{"a.txt": "two", "b.txt": "bee"})
}

func TestFetchErrors(t *testing.T) {
	needGit(t)
	fx := newFixture(t)
	notRepo := t.TempDir()
	if err := os.WriteFile(filepath.Join(notRepo, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := strings.Repeat("ab", 20)
	empty := t.TempDir()
	if _, err := git.PlainInit(empty, false); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		src     Source
		is      error
		message []string
	}{{
		name:    "missing commit",
		src:     Source{URL: fx.path, Commit: missing},
		is:      ErrCommitNotFound,
		message: []string{"commit " + missing + " not found in " + fx.path},
	}, {
		name:    "missing abbreviated commit",
		src:     Source{URL: "file://" + fx.path, Commit: "abc123"},
		is:      ErrCommitNotFound,
		message: []string{"commit abc123 not found in file://" + fx.path},
	}, {
		name:    "missing branch",
		src:     Source{URL: fx.path, Branch: "nope"},
		is:      ErrBranchNotFound,
		message: []string{"branch nope not found in " + fx.path},
	}, {
		name:    "not a repository",
		src:     Source{URL: notRepo},
		is:      ErrRepositoryNotFound,
		message: []string{notRepo, "repository not found"},
	}, {
		name:    "no such path",
		src:     Source{URL: filepath.Join(notRepo, "nope"), Commit: missing},
		is:      ErrRepositoryNotFound,
		message: []string{filepath.Join(notRepo, "nope")},
	}, {
		name:    "empty repository, default branch",
		src:     Source{URL: empty},
		is:      ErrBranchNotFound,
		message: []string{empty},
	}, {
		name:    "empty repository, branch",
		src:     Source{URL: empty, Branch: "main"},
		is:      ErrBranchNotFound,
		message: []string{"branch main not found in " + empty},
	}, {
		name:    "empty repository, commit",
		src:     Source{URL: empty, Commit: missing},
		is:      ErrCommitNotFound,
		message: []string{"commit " + missing + " not found in " + empty},
	}, {
		name:    "invalid commit",
		src:     Source{URL: fx.path, Commit: "main"},
		message: []string{fx.path, `invalid commit "main"`},
	}, {
		name:    "invalid branch",
		src:     Source{URL: fx.path, Branch: "a..b"},
		message: []string{fx.path, `invalid branch name "a..b"`},
	}, {
		name:    "missing tag",
		src:     Source{URL: fx.path, Tag: "v9"},
		is:      ErrTagNotFound,
		message: []string{"tag v9 not found in " + fx.path},
	}, {
		name:    "invalid tag",
		src:     Source{URL: fx.path, Tag: "v1 beta"},
		message: []string{fx.path, `invalid tag name "v1 beta"`},
	}}
	for _, f := range fetchers(t) {
		for _, tt := range tests {
			t.Run(f.name+"/"+tt.name, func(t *testing.T) {
				parent := t.TempDir()
				dir := filepath.Join(parent, "ws")
				_, err := f.fetch(context.Background(), tt.src, dir)
				if err == nil {
					t.Fatal("Fetch succeeded")
				}
				t.Log(err)
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("error %q is not %q", err, tt.is)
				}
				for _, m := range tt.message {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q does not contain %q", err, m)
					}
				}
				// Nothing is left behind.
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left behind (%v)", dir, err)
				}
			})
		}
	}
}

func TestFetchIntoNonEmptyDir(t *testing.T) {
	for _, f := range fetchers(t) {
		t.Run(f.name, func(t *testing.T) {
			needGit(t)
			fx := newFixture(t)
			dir := t.TempDir()
			keep := filepath.Join(dir, "keep")
			if err := os.WriteFile(keep, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := f.fetch(context.Background(), Source{URL: fx.path}, dir)
			if err == nil || !strings.Contains(err.Error(), "not empty") {
				t.Fatalf("err = %v, want a not-empty error", err)
			}
			if _, err := os.Stat(keep); err != nil {
				t.Errorf("a file of the caller's was removed: %v", err)
			}
		})
	}
}

func TestFetchIntoExistingEmptyDirCleansUp(t *testing.T) {
	for _, f := range fetchers(t) {
		t.Run(f.name, func(t *testing.T) {
			needGit(t)
			fx := newFixture(t)
			dir := t.TempDir()
			_, err := f.fetch(context.Background(), Source{URL: fx.path, Commit: strings.Repeat("0", 40)}, dir)
			if !errors.Is(err, ErrCommitNotFound) {
				t.Fatalf("err = %v, want ErrCommitNotFound", err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatalf("the caller's directory is gone: %v", err)
			}
			if len(entries) != 0 {
				t.Errorf("left behind: %v", entries)
			}
		})
	}
}

func TestFetchCancelled(t *testing.T) {
	for _, f := range fetchers(t) {
		t.Run(f.name, func(t *testing.T) {
			needGit(t)
			fx := newFixture(t)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			dir := filepath.Join(t.TempDir(), "ws")
			_, err := f.fetch(ctx, Source{URL: fx.path}, dir)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s left behind (%v)", dir, err)
			}
		})
	}
}

// TestFetchCancelledDuringFetch cancels while the server is answering: the
// fetch must stop promptly with the context's error.
func TestFetchCancelledDuringFetch(t *testing.T) {
	for _, f := range fetchers(t) {
		t.Run(f.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			started := make(chan struct{}, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case started <- struct{}{}:
				default:
				}
				select {
				case <-r.Context().Done():
				case <-time.After(30 * time.Second):
				}
			}))
			defer srv.Close()
			go func() {
				<-started
				cancel()
			}()
			begin := time.Now()
			_, err := f.fetch(ctx, Source{URL: srv.URL + "/repo.git"}, filepath.Join(t.TempDir(), "ws"))
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if d := time.Since(begin); d > 10*time.Second {
				t.Errorf("cancellation took %v", d)
			}
		})
	}
}

// gitHTTP serves the repositories under root over smart HTTP with git
// http-backend, asking for user:password when password is set. config is
// given to git as -c options.
func gitHTTP(t *testing.T, root, user, password string, config ...string) *httptest.Server {
	t.Helper()
	return gittest.HTTPServer(t, root, user, password, config...)
}

func TestFetchHTTPExactCommitShallow(t *testing.T) {
	for _, f := range fetchers(t) {
		t.Run(f.name, func(t *testing.T) {
			fx := newFixture(t)
			// A server that lets clients want any commit, as GitHub does: an older
			// commit comes alone, at depth 1.
			srv := gitHTTP(t, filepath.Dir(fx.path), "", "", "uploadpack.allowAnySHA1InWant=true")
			dir := filepath.Join(t.TempDir(), "ws")
			url := srv.URL + "/" + filepath.Base(fx.path) + "/.git"
			got, err := f.fetch(context.Background(), Source{URL: url, Commit: fx.first.String()}, dir)
			if err != nil {
				t.Fatal(err)
			}
			if got != fx.first.String() {
				t.Errorf("Fetch = %s, want %s", got, fx.first)
			}
			checkTree(t, dir, map[string]string{"a.txt": "one"})
			checkHeadAs(t, dir, "", fx.first, f.detached)
			// first is a root commit: its whole history fits the shallow depth, so
			// the clone is not marked shallow; that nothing else came shows that it
			// was not a full fetch.
			for _, h := range []plumbing.Hash{fx.second, fx.feat, fx.tagged} {
				if hasCommit(t, dir, h) {
					t.Errorf("fetched %s, which was not needed", h)
				}
			}

			// A commit that does not exist: refused by the server, then looked for in
			// a full fetch.
			_, err = f.fetch(context.Background(), Source{URL: url, Commit: strings.Repeat("cd", 20)},
				filepath.Join(t.TempDir(), "ws"))
			if !errors.Is(err, ErrCommitNotFound) {
				t.Fatalf("err = %v, want ErrCommitNotFound", err)
			}
		})
	}
}

func TestFetchCredentialsNeverShown(t *testing.T) {
	for _, f := range fetchers(t) {
		t.Run(f.name, func(t *testing.T) {
			fx := newFixture(t)
			const secret = "s3cr3t-p4ss"
			srv := gitHTTP(t, filepath.Dir(fx.path), "bob", secret)
			host := strings.TrimPrefix(srv.URL, "http://")
			path := "/" + filepath.Base(fx.path) + "/.git"

			// Right credentials: the fetch works and the new repository's config
			// does not keep them.
			dir := filepath.Join(t.TempDir(), "ws")
			if _, err := f.fetch(context.Background(), Source{URL: "http://bob:" + secret + "@" + host + path}, dir); err != nil {
				t.Fatal(err)
			}
			checkTree(t, dir, map[string]string{"a.txt": "two", "b.txt": "bee"})
			cfg, err := os.ReadFile(filepath.Join(dir, ".git", "config"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(cfg), secret) || strings.Contains(string(cfg), "bob") {
				t.Errorf(".git/config keeps the credentials:\n%s", cfg)
			}
			if !strings.Contains(string(cfg), "http://"+host+path) {
				t.Errorf(".git/config lacks origin's URL:\n%s", cfg)
			}

			// Wrong credentials, a token as user name, an unreachable host: errors
			// name the URL, redacted.
			for _, u := range []string{
				"http://bob:wrong-" + secret + "@" + host + path,
				"http://" + secret + "@" + host + path,
				"http://bob:" + secret + "@127.0.0.1:1/repo.git",
			} {
				_, err := f.fetch(context.Background(), Source{URL: u, Commit: fx.first.String()}, filepath.Join(t.TempDir(), "ws"))
				if err == nil {
					t.Fatalf("%s: Fetch succeeded", Redact(u))
				}
				t.Log(err)
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows the secret: %v", err)
				}
				if !strings.Contains(err.Error(), Redact(u)) {
					t.Errorf("error %q does not name %s", err, Redact(u))
				}
			}
		})
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pass@github.com/o/r.git": "https://***@github.com/o/r.git",
		"https://TOKEN@github.com/o/r.git":     "https://***@github.com/o/r.git",
		"https://u:p@ss@host:8443/r?x=a@b":     "https://***@host:8443/r?x=a@b",
		"https://github.com/o/r.git":           "https://github.com/o/r.git",
		"ssh://git:pw@host/r.git":              "ssh://***@host/r.git",
		"git@github.com:o/r.git":               "git@github.com:o/r.git",
		"/srv/git/r@2":                         "/srv/git/r@2",
		"file:///srv/git/r":                    "file:///srv/git/r",
		"https://host/path/with@sign/r.git":    "https://host/path/with@sign/r.git",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWorkingTreeIsALocalDirectoryThatIsNoRepository(t *testing.T) {
	plain := t.TempDir()
	repo, _ := gittest.Repo(t, map[string]string{"a.txt": "a"})
	tests := []struct {
		name    string
		src     Source
		ok      bool
		failing bool
	}{
		{"a plain directory", Source{URL: plain}, true, false},
		{"as a file:// URL", Source{URL: "file://" + plain}, true, false},
		{"a repository is fetched", Source{URL: repo}, false, false},
		{"a remote is fetched", Source{URL: "https://example.com/a.git"}, false, false},
		{"a missing path is Fetch's to report", Source{URL: filepath.Join(plain, "missing")}, false, false},
		{"a commit of a plain directory", Source{URL: plain, Commit: "abcd"}, false, true},
		{"a branch of a plain directory", Source{URL: plain, Branch: "main"}, false, true},
		{"a tag of a plain directory", Source{URL: plain, Tag: "v1"}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, ok, err := WorkingTree(tc.src)
			if ok != tc.ok || (err != nil) != tc.failing {
				t.Fatalf("WorkingTree(%+v) = %q, %v, %v; want ok %v, failing %v", tc.src, dir, ok, err, tc.ok, tc.failing)
			}
			if ok && dir != plain {
				t.Errorf("dir %q, want %q", dir, plain)
			}
		})
	}
}
