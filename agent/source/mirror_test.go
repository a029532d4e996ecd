package source

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
)

// gitIn runs the git program in dir and returns what it printed, trimmed.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commitFile commits name with content in the repository at dir and
// returns the commit.
func commitFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, dir, "add", name)
	gitIn(t, dir, "commit", "-q", "-m", "add "+name)
	return gitIn(t, dir, "rev-parse", "HEAD")
}

// tagged is a repository made by the git program: three commits on main,
// the second tagged v1.0 (annotated) and the first v0.9 (lightweight).
func tagged(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	gitIn(t, dir, "init", "-q", "-b", "main")
	commitFile(t, dir, "a.txt", "one")
	gitIn(t, dir, "tag", "v0.9")
	commitFile(t, dir, "b.txt", "two")
	gitIn(t, dir, "tag", "-a", "v1.0", "-m", "release 1.0")
	commitFile(t, dir, "c.txt", "three")
	return dir
}

// forEachMirror runs test with each kind of mirror an agent keeps: with
// the git program, and with go-git (an agent without git).
func forEachMirror(t *testing.T, test func(t *testing.T, m *Mirrors, logs *syncbuf.Buffer)) {
	t.Helper()
	for _, goGit := range []bool{false, true} {
		name := "git"
		if goGit {
			name = "go-git"
		}
		t.Run(name, func(t *testing.T) {
			m, logs := newMirrors(t)
			if goGit {
				m.Git = ""
			}
			test(t, m, logs)
		})
	}
}

func newMirrors(t *testing.T) (*Mirrors, *syncbuf.Buffer) {
	t.Helper()
	needGit(t)
	logs := &syncbuf.Buffer{}
	m := NewMirrors(t.TempDir(), hclog.New(&hclog.LoggerOptions{Output: logs}))
	if m.Git == "" {
		t.Fatal("git is on PATH, yet NewMirrors found none")
	}
	return m, logs
}

// A checkout is as git makes it, over each transport: a job's `git
// describe --tags` and `git log -1` say what the repository says, HEAD is
// detached at the commit with the branch beside it, the working tree is
// clean, and origin is the URL without credentials.
func TestMirrorCheckoutIsAsGitMakesIt(t *testing.T) {
	forEachMirror(t, func(t *testing.T, m *Mirrors, logs *syncbuf.Buffer) {
		repo := tagged(t)
		const secret = "t0ken-s3cret"
		httpSrv := gitHTTP(t, filepath.Dir(repo), "ci", secret)
		daemon := gittest.Daemon(t, filepath.Dir(repo))
		sshBase, key := gittest.SSHServer(t)
		host := strings.TrimPrefix(httpSrv.URL, "http://")
		for _, tc := range []struct{ name, url, key, origin string }{
			{"path", repo, "", repo},
			{"git protocol", daemon + "/repo", "", daemon + "/repo"},
			{"smart http with a token", "http://ci:" + secret + "@" + host + "/repo/.git", "", httpSrv.URL + "/repo/.git"},
			{"ssh with a deploy key", sshBase + repo, key, sshBase + repo},
		} {
			if tc.key != "" && m.Git == "" {
				continue // deploy keys need git: TestDeployKeyRefusals
			}
			t.Run(tc.name, func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "ws")
				commit, err := m.Fetch(context.Background(), Source{URL: tc.url, Branch: "main", SSHKey: tc.key}, dir)
				if err != nil {
					t.Fatal(err)
				}
				if want := gitIn(t, repo, "rev-parse", "HEAD"); commit != want {
					t.Errorf("commit %s, want %s", commit, want)
				}
				// A folder of its own, never a link (the script container
				// mounts it before the fetch ends).
				if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
					t.Errorf("%s: %v %v, want a folder", dir, fi, err)
				}
				for _, args := range [][]string{
					{"describe", "--tags"},
					{"describe"},
					{"log", "-1", "--format=%H %an %s"},
				} {
					if got, want := gitIn(t, dir, args...), gitIn(t, repo, args...); got != want {
						t.Errorf("git %s: %q, want %q", strings.Join(args, " "), got, want)
					}
				}
				if got := gitIn(t, dir, "rev-parse", "--abbrev-ref", "HEAD"); got != "HEAD" {
					t.Errorf("HEAD is on %q, want detached", got)
				}
				if got := gitIn(t, dir, "rev-parse", "refs/heads/main", "refs/remotes/origin/main"); got != commit+"\n"+commit {
					t.Errorf("main and origin/main: %q, want both at %s", got, commit)
				}
				if got := gitIn(t, dir, "status", "--porcelain"); got != "" {
					t.Errorf("working tree not clean:\n%s", got)
				}
				if got := gitIn(t, dir, "remote", "get-url", "origin"); got != tc.origin {
					t.Errorf("origin %q, want %q", got, tc.origin)
				}
				// Neither the token nor the key is left anywhere: the
				// checkout, nor the mirror that the agent keeps.
				for _, where := range []string{dir, m.Dir} {
					if found := filesHolding(t, where, append(KeyLines(key), secret)...); len(found) > 0 {
						t.Errorf("a credential is written in %v", found)
					}
				}
			})
		}
	})
}

// filesHolding are the files under root (links not followed) that hold
// any of secrets.
func filesHolding(t *testing.T, root string, secrets ...string) []string {
	t.Helper()
	var found []string
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				found = append(found, p)
				break
			}
		}
		return nil
	})
	return found
}

// A deploy key is checked before it is used, and a fetch over SSH without
// the right one is refused, saying so, without showing it.
func TestDeployKeyRefusals(t *testing.T) {
	m, _ := newMirrors(t)
	repo := tagged(t)
	sshBase, key := gittest.SSHServer(t)
	_, other := gittest.SSHServer(t) // a key that server does not know
	for _, tc := range []struct{ name, key, want string }{
		{"no key", "", "the host's SSH key is not known"},
		{"another key", other, "authorization failed"},
		{"not a key", "ssh-ed25519 AAAA... a public key", "not an SSH private key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Fetch(context.Background(), Source{URL: sshBase + repo, Branch: "main", SSHKey: tc.key}, filepath.Join(t.TempDir(), "ws"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			for _, line := range KeyLines(tc.key) {
				if strings.Contains(err.Error(), line) {
					t.Errorf("the error shows the key: %v", err)
				}
			}
		})
	}
	if _, err := Fetch(context.Background(), Source{URL: sshBase + repo, SSHKey: key}, filepath.Join(t.TempDir(), "ws")); err == nil || !strings.Contains(err.Error(), "needs the git program") {
		t.Errorf("go-git with a deploy key: %v, want it refused, saying git is needed", err)
	}
	m.Git = "" // an agent without git
	if _, err := m.Fetch(context.Background(), Source{URL: sshBase + repo, SSHKey: key}, filepath.Join(t.TempDir(), "ws")); err == nil || !strings.Contains(err.Error(), "needs the git program") {
		t.Errorf("a go-git mirror with a deploy key: %v, want it refused, saying git is needed", err)
	}
}

// A second build of a new commit fetches only what the mirror lacks: over
// smart HTTP, the second fetch's answers weigh a fraction of the first's.
func TestMirrorFetchesOnlyWhatItLacks(t *testing.T) {
	forEachMirror(t, func(t *testing.T, m *Mirrors, logs *syncbuf.Buffer) {
		repo := tagged(t)
		// 2 MB that does not compress: the first fetch carries it.
		big := make([]byte, 2<<20)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range big {
			big[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(repo, "big.bin"), big, 0o644); err != nil {
			t.Fatal(err)
		}
		gitIn(t, repo, "add", "big.bin")
		gitIn(t, repo, "commit", "-q", "-m", "big")
		var sent atomic.Int64
		backend := gittest.HTTPHandler(t, filepath.Dir(repo))
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			backend.ServeHTTP(&countingWriter{ResponseWriter: w, n: &sent}, r)
		}))
		t.Cleanup(srv.Close)
		url := srv.URL + "/repo/.git"
		if _, err := m.Fetch(context.Background(), Source{URL: url, Branch: "main"}, filepath.Join(t.TempDir(), "ws")); err != nil {
			t.Fatal(err)
		}
		first := sent.Swap(0)
		next := commitFile(t, repo, "d.txt", "four")
		dir := filepath.Join(t.TempDir(), "ws")
		got, err := m.Fetch(context.Background(), Source{URL: url, Branch: "main", Commit: next}, dir)
		if err != nil {
			t.Fatal(err)
		}
		second := sent.Load()
		if got != next {
			t.Errorf("commit %s, want %s", got, next)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "big.bin")); err != nil || !bytes.Equal(b, big) {
			t.Errorf("big.bin not in the second checkout whole (%v)", err)
		}
		t.Logf("first fetch: %d bytes from the server, second: %d", first, second)
		if first < 1<<20 || second > first/20 {
			t.Errorf("the server sent %d bytes for the first build and %d for the next, want the next well under a twentieth", first, second)
		}
	})
}

// A mirror damaged on disk is replaced: the build succeeds and the
// agent's log says what happened.
func TestADamagedMirrorIsReplaced(t *testing.T) {
	forEachMirror(t, func(t *testing.T, m *Mirrors, logs *syncbuf.Buffer) {
		repo := tagged(t)
		first := filepath.Join(t.TempDir(), "ws")
		if _, err := m.Fetch(context.Background(), Source{URL: repo, Branch: "main"}, first); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(first); err != nil { // the build is over
			t.Fatal(err)
		}
		mirror := filepath.Join(m.Dir, mirrorName(repo))
		// Every object and ref of the mirror turned to garbage.
		err := filepath.Walk(mirror, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.Mode().IsRegular() && (strings.Contains(p, "/objects/") || strings.HasSuffix(p, "HEAD") || strings.Contains(p, "/refs/")) {
				return os.WriteFile(p, []byte("garbage"), 0o644)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		next := commitFile(t, repo, "d.txt", "four")
		dir := filepath.Join(t.TempDir(), "ws")
		var told []string
		got, err := m.Fetch(context.Background(), Source{URL: repo, Branch: "main", Tell: func(line string) { told = append(told, line) }}, dir)
		if err != nil {
			t.Fatalf("the build after the damage: %v\nlog:\n%s", err, logs.String())
		}
		if len(told) != 1 || !strings.Contains(told[0], "mirror of the repository failed") {
			t.Errorf("the build was told %q, want that its mirror was replaced", told)
		}
		if got != next {
			t.Errorf("commit %s, want %s", got, next)
		}
		checkTree(t, dir, map[string]string{"a.txt": "one", "b.txt": "two", "c.txt": "three", "d.txt": "four"})
		if !strings.Contains(logs.String(), "mirror failed; fetching a fresh one") {
			t.Errorf("the log does not say the mirror was replaced:\n%s", logs.String())
		}
	})
}

// Builds of one repository at once share its mirror: each gets its own
// commit whole, as a copy of hard links or as a worktree it holds.
func TestBuildsShareTheMirrorAtOnce(t *testing.T) {
	for _, link := range []bool{false, true} {
		t.Run(fmt.Sprintf("link=%v", link), func(t *testing.T) {
			m, _ := newMirrors(t)
			buildsAtOnce(t, m, link)
		})
	}
	t.Run("go-git", func(t *testing.T) {
		m, _ := newMirrors(t)
		m.Git = ""
		buildsAtOnce(t, m, false)
	})
}

func buildsAtOnce(t *testing.T, m *Mirrors, link bool) {
	repo := tagged(t)
	commits := []string{gitIn(t, repo, "rev-parse", "HEAD~2"), gitIn(t, repo, "rev-parse", "HEAD~1"), gitIn(t, repo, "rev-parse", "HEAD")}
	files := []map[string]string{
		{"a.txt": "one"},
		{"a.txt": "one", "b.txt": "two"},
		{"a.txt": "one", "b.txt": "two", "c.txt": "three"},
	}
	var wg sync.WaitGroup
	dirs := make([][]string, 2)
	for round := range 2 {
		dirs[round] = make([]string, len(commits))
		for i, c := range commits {
			dir := filepath.Join(t.TempDir(), "ws")
			dirs[round][i] = dir
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := m.Fetch(context.Background(), Source{URL: repo, Branch: "main", Commit: c, Link: link}, dir)
				if err != nil {
					t.Errorf("round %d, commit %d: %v", round, i, err)
					return
				}
				if got != c {
					t.Errorf("round %d: commit %s, want %s", round, got, c)
				}
				checkTree(t, dir, files[i])
			}()
		}
	}
	wg.Wait()
	// Each build held its checkout: what came after changed none.
	for round := range dirs {
		for i, dir := range dirs[round] {
			checkTree(t, dir, files[i])
		}
	}
}

// countingWriter counts the bytes of the answers it writes.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// Past MaxBytes the least recently used mirrors go, never the one just
// used: a build of the repository whose mirror went fetches it again.
func TestMirrorsStayWithinTheirBound(t *testing.T) {
	forEachMirror(t, func(t *testing.T, m *Mirrors, logs *syncbuf.Buffer) {
		m.MaxBytes = 1 // every mirror is over it: only the last used stays
		a, b := tagged(t), tagged(t)
		// Each build's snapshot is gone once it ends, as the agent removes it:
		// until then its mirror stays.
		fetch := func(repo string) {
			t.Helper()
			dir := filepath.Join(t.TempDir(), "ws")
			if _, err := m.Fetch(context.Background(), Source{URL: repo, Branch: "main"}, dir); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}
		mirrors := func() []string {
			t.Helper()
			entries, err := os.ReadDir(m.Dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			return names
		}
		fetch(a)
		if got := mirrors(); len(got) != 1 || got[0] != mirrorName(a) {
			t.Fatalf("after a: %v, want only a's mirror", got)
		}
		fetch(b)
		if got := mirrors(); len(got) != 1 || got[0] != mirrorName(b) {
			t.Errorf("after b: %v, want only b's mirror", got)
		}
		if !strings.Contains(logs.String(), "removed the least recently used mirror") {
			t.Errorf("the log does not say a mirror went:\n%s", logs.String())
		}
		fetch(a)
		if got := mirrors(); len(got) != 1 || got[0] != mirrorName(a) {
			t.Errorf("after a again: %v, want only a's mirror", got)
		}
		// A build still running keeps its mirror, over the bound or not.
		running := filepath.Join(t.TempDir(), "ws")
		if _, err := m.Fetch(context.Background(), Source{URL: a, Branch: "main"}, running); err != nil {
			t.Fatal(err)
		}
		fetch(b)
		if got := mirrors(); len(got) != 2 {
			t.Errorf("with a's build running: %v, want both mirrors", got)
		}
		if got := gitIn(t, running, "log", "-1", "--format=%s"); got != "add c.txt" {
			t.Errorf("the running build's git log: %q", got)
		}
	})
}

// A URL's credentials reach git in its environment, as a header for the
// URL's origin only (a submodule elsewhere never receives them), and only
// for http(s).
func TestCredentialConfig(t *testing.T) {
	basic := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("ci:t0k:en"))
	token := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("ghp_abc:"))
	for _, tc := range []struct {
		url  string
		want []setting
	}{
		{"https://ci:t0k%3Aen@git.example:8443/team/app.git", []setting{{"http.https://git.example:8443/.extraHeader", basic}}},
		{"http://ghp_abc@git.example/app.git", []setting{{"http.http://git.example/.extraHeader", token}}},
		{"https://git.example/app.git", nil},
		{"ssh://git@git.example/app.git", nil},
		{"git://git.example/app.git", nil},
		{"/srv/git/app", nil},
	} {
		if got := credentialConfig(tc.url); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", Redact(tc.url), got, tc.want)
		}
	}
}

// A repository with a submodule (on the same server, by a relative URL,
// behind the same token) builds with the submodule's files present, the
// token written nowhere; `submodules: false` in .monkeyci/script.yaml
// leaves it out.
func TestSubmodulesAreCheckedOut(t *testing.T) {
	m, _ := newMirrors(t)
	root := t.TempDir()
	lib := filepath.Join(root, "lib-work")
	if err := os.Mkdir(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	gitIn(t, lib, "init", "-q", "-b", "main")
	commitFile(t, lib, "l.txt", "from the submodule")
	gitIn(t, root, "clone", "-q", "--bare", lib, filepath.Join(root, "lib.git"))
	app := filepath.Join(root, "app-work")
	if err := os.Mkdir(app, 0o755); err != nil {
		t.Fatal(err)
	}
	gitIn(t, app, "init", "-q", "-b", "main")
	commitFile(t, app, "a.txt", "app")
	gitIn(t, app, "-c", "protocol.file.allow=always", "submodule", "add", "-q", "../lib.git", "vendor/lib")
	gitIn(t, app, "commit", "-q", "-m", "the submodule")
	gitIn(t, root, "clone", "-q", "--bare", app, filepath.Join(root, "app.git"))

	const secret = "subm0dule-t0ken"
	srv := gitHTTP(t, root, "ci", secret)
	url := strings.Replace(srv.URL, "http://", "http://ci:"+secret+"@", 1) + "/app.git"
	dir := filepath.Join(t.TempDir(), "ws")
	if _, err := m.Fetch(context.Background(), Source{URL: url, Branch: "main"}, dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "vendor", "lib", "l.txt")); err != nil || string(b) != "from the submodule" {
		t.Errorf("vendor/lib/l.txt: %q %v", b, err)
	}
	if got := gitIn(t, dir, "status", "--porcelain"); got != "" {
		t.Errorf("working tree not clean:\n%s", got)
	}
	_ = filepath.Walk(filepath.Join(dir, ".git"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(secret)) {
				t.Errorf("the token is written in %s", p)
			}
		}
		return nil
	})

	// Left out when the repository says so.
	if err := os.MkdirAll(filepath.Join(app, ".monkeyci"), 0o755); err != nil {
		t.Fatal(err)
	}
	commitFile(t, app, ".monkeyci/script.yaml", "submodules: false\n")
	gitIn(t, app, "push", "-q", filepath.Join(root, "app.git"), "main")
	dir = filepath.Join(t.TempDir(), "ws")
	if _, err := m.Fetch(context.Background(), Source{URL: url, Branch: "main"}, dir); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "vendor", "lib")); err != nil || len(entries) != 0 {
		t.Errorf("vendor/lib with submodules: false: %v %v, want an empty folder", entries, err)
	}
}

// A repository with a Git LFS file, served with its LFS server behind a
// token, builds with the file's content in place of its pointer, git
// seeing a clean tree, and the token written nowhere; the next build
// fetches no file it has already; `lfs: false` leaves the pointer.
func TestLFSFilesAreFetched(t *testing.T) {
	m, _ := newMirrors(t)
	if _, err := exec.LookPath("git-lfs"); err != nil {
		t.Fatalf("git-lfs is needed (apt-get install git-lfs): %v", err)
	}
	root := t.TempDir()
	app := filepath.Join(root, "app")
	if err := os.Mkdir(app, 0o755); err != nil {
		t.Fatal(err)
	}
	gitIn(t, app, "init", "-q", "-b", "main")
	gitIn(t, app, "lfs", "install", "--local")
	gitIn(t, app, "lfs", "track", "*.bin")
	content := strings.Repeat("large binary content\n", 5000)
	commitFile(t, app, "model.bin", content)
	commitFile(t, app, ".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n")
	if got := gitIn(t, app, "cat-file", "-p", "HEAD:model.bin"); !strings.HasPrefix(got, "version https://git-lfs") {
		t.Fatalf("model.bin was committed as %.60q, want an LFS pointer", got)
	}

	const secret = "lfs-t0ken"
	var objectGets atomic.Int32
	lfs := gittest.HTTPServer(t, root, "ci", secret)
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/info/lfs/objects/") {
			objectGets.Add(1)
		}
		lfs.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(counting.Close)
	url := strings.Replace(counting.URL, "http://", "http://ci:"+secret+"@", 1) + "/app/.git"
	fetch := func() string {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "ws")
		if _, err := m.Fetch(context.Background(), Source{URL: url, Branch: "main"}, dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir := fetch()
	if b, err := os.ReadFile(filepath.Join(dir, "model.bin")); err != nil || string(b) != content {
		t.Fatalf("model.bin: %.60q %v, want the LFS file's content", b, err)
	}
	if got := gitIn(t, dir, "-c", "filter.lfs.clean=git-lfs clean -- %f", "status", "--porcelain"); got != "" {
		t.Errorf("working tree not clean:\n%s", got)
	}
	for _, where := range []string{dir, m.Dir} {
		if found := filesHolding(t, where, secret); len(found) > 0 {
			t.Errorf("the token is written in %v", found)
		}
	}
	if n := objectGets.Load(); n != 1 {
		t.Errorf("the first build downloaded %d LFS objects, want 1", n)
	}

	commitFile(t, app, "other.txt", "a change beside the LFS file")
	if b, err := os.ReadFile(filepath.Join(fetch(), "model.bin")); err != nil || string(b) != content {
		t.Errorf("the next build's model.bin: %.60q %v", b, err)
	}
	if n := objectGets.Load(); n != 1 {
		t.Errorf("after the next build %d LFS objects were downloaded in all, want still 1", n)
	}

	if err := os.MkdirAll(filepath.Join(app, ".monkeyci"), 0o755); err != nil {
		t.Fatal(err)
	}
	commitFile(t, app, ".monkeyci/script.yaml", "lfs: false\n")
	if b, err := os.ReadFile(filepath.Join(fetch(), "model.bin")); err != nil || !strings.HasPrefix(string(b), "version https://git-lfs") {
		t.Errorf("model.bin with lfs: false: %.60q %v, want its pointer", b, err)
	}
}

// A repository's depth setting is the depth its mirror fetches at: 0 the
// whole history.
func TestRepositoryDepth(t *testing.T) {
	repo := tagged(t) // three commits
	for i := range 3 {
		commitFile(t, repo, fmt.Sprintf("more-%d.txt", i), "more")
	}
	daemon := gittest.Daemon(t, filepath.Dir(repo))
	for _, tc := range []struct {
		depth, want int
		goGit       bool
	}{{4, 4, false}, {0, 6, false}, {4, 4, true}, {0, 6, true}} {
		m, _ := newMirrors(t)
		m.Depth = 2
		if tc.goGit {
			m.Git = ""
		}
		dir := filepath.Join(t.TempDir(), "ws")
		if _, err := m.Fetch(context.Background(), Source{URL: daemon + "/repo", Branch: "main", Depth: &tc.depth}, dir); err != nil {
			t.Fatal(err)
		}
		if got := gitIn(t, dir, "rev-list", "--count", "HEAD"); got != fmt.Sprint(tc.want) {
			t.Errorf("depth %d (go-git %v): %s commits, want %d", tc.depth, tc.goGit, got, tc.want)
		}
	}
}

// depth in .monkeyci/script.yaml gives the checkout that much history, 0
// all of it, and the mirror keeps it for the next builds.
func TestScriptYAMLDepth(t *testing.T) {
	forEachMirror(t, func(t *testing.T, m *Mirrors, logs *syncbuf.Buffer) {
		m.Depth = 2
		repo := tagged(t) // three commits
		for i := range 3 {
			commitFile(t, repo, fmt.Sprintf("more-%d.txt", i), "more")
		}
		daemon := gittest.Daemon(t, filepath.Dir(repo))
		count := func(dir string) string { return gitIn(t, dir, "rev-list", "--count", "HEAD") }
		fetch := func() string {
			t.Helper()
			dir := filepath.Join(t.TempDir(), "ws")
			if _, err := m.Fetch(context.Background(), Source{URL: daemon + "/repo", Branch: "main"}, dir); err != nil {
				t.Fatal(err)
			}
			return dir
		}
		if got := count(fetch()); got != "2" {
			t.Errorf("by default %s commits, want 2", got)
		}
		if err := os.MkdirAll(filepath.Join(repo, ".monkeyci"), 0o755); err != nil {
			t.Fatal(err)
		}
		commitFile(t, repo, ".monkeyci/script.yaml", "depth: 4\n")
		if got := count(fetch()); got != "4" {
			t.Errorf("with depth: 4, %s commits, want 4", got)
		}
		commitFile(t, repo, ".monkeyci/script.yaml", "depth: 0\n")
		if got := count(fetch()); got != "8" {
			t.Errorf("with depth: 0, %s commits, want all 8", got)
		}
		if got := gitIn(t, fetch(), "rev-parse", "--is-shallow-repository"); got != "false" {
			t.Errorf("the next build's checkout is shallow: %s", got)
		}
	})
}

// A fetch that fails because the remote does not answer keeps the mirror:
// a network's hiccup is no reason to fetch a large repository afresh.
func TestAnUnreachableRemoteKeepsTheMirror(t *testing.T) {
	forEachMirror(t, func(t *testing.T, m *Mirrors, logs *syncbuf.Buffer) {
		repo := tagged(t)
		srv := gitHTTP(t, filepath.Dir(repo), "", "")
		url := srv.URL + "/repo/.git"
		first := filepath.Join(t.TempDir(), "ws")
		if _, err := m.Fetch(context.Background(), Source{URL: url, Branch: "main"}, first); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(first); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if _, err := m.Fetch(context.Background(), Source{URL: url, Branch: "main"}, filepath.Join(t.TempDir(), "ws")); err == nil {
			t.Fatal("the fetch from a closed server succeeded")
		}
		if _, err := os.Stat(filepath.Join(m.Dir, mirrorName(url), "mirror.git", "HEAD")); err != nil {
			t.Errorf("the mirror is gone: %v", err)
		}
		if strings.Contains(logs.String(), "fetching a fresh one") {
			t.Errorf("the mirror was replaced:\n%s", logs.String())
		}
	})
}

// A repository's tree is small once a checkout of it held fewer than
// OverlayFrom bytes of files: not before, nor for a large one.
func TestSmallTree(t *testing.T) {
	m, _ := newMirrors(t)
	small, large := tagged(t), tagged(t)
	if err := os.WriteFile(filepath.Join(large, "zeros.bin"), make([]byte, OverlayFrom), 0o644); err != nil {
		t.Fatal(err)
	}
	gitIn(t, large, "add", "zeros.bin")
	gitIn(t, large, "commit", "-q", "-m", "large")
	for _, repo := range []string{small, large} {
		if m.SmallTree(repo) {
			t.Errorf("%s is small before any checkout of it", repo)
		}
		if _, err := m.Fetch(context.Background(), Source{URL: repo, Branch: "main"}, filepath.Join(t.TempDir(), "ws")); err != nil {
			t.Fatal(err)
		}
	}
	if !m.SmallTree(small) || m.SmallTree(large) {
		t.Errorf("small: small %v, large %v", m.SmallTree(small), m.SmallTree(large))
	}
}

// A branch chooses its .gitmodules, and the agent's git fetches them from
// the agent's own host: a submodule there (loopback, the cloud's metadata
// service, a path) is refused before anything is fetched, saying which.
func TestSubmodulesOnTheAgentsHostAreRefused(t *testing.T) {
	m, _ := newMirrors(t)
	for _, tc := range []struct{ url, want string }{
		{"http://169.254.169.254/opc/v2/instance.git", "metadata"},
		{"http://localhost:1/x.git", "agent's own host"},
		{"git://[::1]:9418/x.git", "agent's own host"},
		{"/var/lib/monkeyci/agent/mirrors/other/mirror.git", "a path on the agent's machine"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			repo := tagged(t)
			head := gitIn(t, repo, "rev-parse", "HEAD")
			gitIn(t, repo, "update-index", "--add", "--cacheinfo", "160000,"+head+",vendor/x")
			commitFile(t, repo, ".gitmodules", fmt.Sprintf("[submodule \"x\"]\n\tpath = vendor/x\n\turl = %s\n", tc.url))
			daemon := gittest.Daemon(t, filepath.Dir(repo))
			_, err := m.Fetch(context.Background(), Source{URL: daemon + "/repo", Branch: "main"}, filepath.Join(t.TempDir(), "ws"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestCheckSubmoduleURL(t *testing.T) {
	for _, tc := range []struct {
		url, repoHost string
		ok            bool
	}{
		{"https://github.com/acme/lib.git", "github.com", true},
		{"git@github.com:acme/lib.git", "gitlab.com", true},
		{"https://10.0.0.7/lib.git", "git.example", true},    // a forge on the private network
		{"http://127.0.0.1:8080/lib.git", "127.0.0.1", true}, // the repository's own host
		{"http://127.0.0.1:8080/lib.git", "git.example", false},
		{"ssh://git@[fe80::1]/lib.git", "git.example", false},
		{"http://0.0.0.0/lib.git", "git.example", false},
		{"git@169.254.169.254:lib.git", "git.example", false},
		{"../lib.git", "", true}, // a local repository's, git's rules apply
		{"/srv/lib.git", "git.example", false},
		{"file:///srv/lib.git", "git.example", false},
	} {
		err := checkSubmoduleURL(context.Background(), tc.url, tc.repoHost)
		if (err == nil) != tc.ok {
			t.Errorf("%s (repository on %q): %v, want ok %v", tc.url, tc.repoHost, err, tc.ok)
		}
	}
}

// A mirror whose loose objects pass its threshold is packed before the
// next fetch, every object kept: one on no ref of the mirror (as a
// worktree's commit fetched by its name is) is still there after.
func TestAMirrorIsPackedKeepingEveryObject(t *testing.T) {
	m, logs := newMirrors(t)
	m.CompactLoose = 1
	repo := tagged(t)
	fetch := func() {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "ws")
		if _, err := m.Fetch(context.Background(), Source{URL: repo, Branch: "main"}, dir); err != nil {
			t.Fatal(err)
		}
		checkTree(t, dir, map[string]string{"a.txt": "one", "b.txt": "two", "c.txt": "three"})
		if err := os.RemoveAll(dir); err != nil { // the build is over
			t.Fatal(err)
		}
	}
	fetch()
	mirror := filepath.Join(m.Dir, mirrorName(repo), "mirror.git")
	loose := func() string {
		for _, line := range strings.Split(gitIn(t, mirror, "count-objects", "-v"), "\n") {
			if n, ok := strings.CutPrefix(line, "count: "); ok {
				return n
			}
		}
		return "?"
	}
	// An object on no ref, and some loose ones.
	blob := filepath.Join(t.TempDir(), "orphan")
	if err := os.WriteFile(blob, []byte("on no ref"), 0o644); err != nil {
		t.Fatal(err)
	}
	orphan := gitIn(t, mirror, "hash-object", "-w", blob)
	if loose() == "0" {
		t.Fatal("no loose object to pack")
	}
	fetch()
	if got := loose(); got != "0" {
		t.Errorf("%s loose objects after the fetch, want all packed\n%s", got, logs.String())
	}
	gitIn(t, mirror, "cat-file", "-e", orphan) // fails the test if gone
	if !strings.Contains(logs.String(), "packed a mirror's objects") {
		t.Errorf("the log does not say the mirror was packed:\n%s", logs.String())
	}
	// Past the packs' threshold, the packs become one, their objects on
	// no ref kept as well.
	m.CompactPacks = 1
	orphans := []string{orphan}
	for _, content := range []string{"two", "three"} {
		if err := os.WriteFile(blob, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		orphans = append(orphans, gitIn(t, mirror, "hash-object", "-w", blob))
	}
	fetch()
	if packs, _ := filepath.Glob(filepath.Join(mirror, "objects", "pack", "*.pack")); len(packs) != 1 || loose() != "0" {
		t.Errorf("packs %v and %s loose objects, want one pack", packs, loose())
	}
	for _, o := range orphans {
		gitIn(t, mirror, "cat-file", "-e", o)
	}
}

// A running build's checkout shares its files with the worktree it was
// linked from: the next checkout there replaces what it changes, the
// shallow bounds too, and never writes into the running build's.
func TestTheNextCheckoutLeavesARunningBuildsShallowBounds(t *testing.T) {
	m, _ := newMirrors(t)
	m.Depth = 2
	repo := tagged(t)
	for i := range 3 {
		commitFile(t, repo, fmt.Sprintf("more-%d.txt", i), "more")
	}
	daemon := gittest.Daemon(t, filepath.Dir(repo))
	running := filepath.Join(t.TempDir(), "ws")
	if _, err := m.Fetch(context.Background(), Source{URL: daemon + "/repo", Branch: "main"}, running); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(running, ".git", "shallow"))
	if err != nil {
		t.Fatal(err)
	}
	commitFile(t, repo, "next.txt", "next")
	// The running build still holds its copy; the worktree goes on.
	if _, err := m.Fetch(context.Background(), Source{URL: daemon + "/repo", Branch: "main"}, filepath.Join(t.TempDir(), "ws")); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(filepath.Join(running, ".git", "shallow"))
	if err != nil || !bytes.Equal(before, after) {
		t.Errorf("the running build's shallow bounds changed under it: %q, then %q (%v)", before, after, err)
	}
	if got := gitIn(t, running, "rev-list", "--count", "HEAD"); got != "2" {
		t.Errorf("the running build's history: %s commits, want 2", got)
	}
}

// A branch's .gitmodules may name any path, a link out of the checkout
// too: the agent's git goes only into the submodules git checked out,
// never through a link to a folder of the agent's host.
func TestSubmodulePathsThroughALinkAreNotFollowed(t *testing.T) {
	m, _ := newMirrors(t)
	host := filepath.Join(t.TempDir(), "host")
	gitIn(t, t.TempDir(), "init", "-q", host)
	gitIn(t, host, "update-index", "--add", "--cacheinfo", "160000,"+strings.Repeat("1", 40)+",y")
	if err := os.WriteFile(filepath.Join(host, ".gitmodules"), []byte("[submodule \"y\"]\n\tpath = y\n\turl = http://example.invalid/y.git\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(host, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}
	repo := tagged(t)
	if err := os.Symlink(host, filepath.Join(repo, "evil")); err != nil {
		t.Fatal(err)
	}
	gitIn(t, repo, "add", "evil")
	commitFile(t, repo, ".gitmodules", "[submodule \"evil\"]\n\tpath = evil\n\turl = ./evil.git\n")
	daemon := gittest.Daemon(t, filepath.Dir(repo))
	if _, err := m.Fetch(context.Background(), Source{URL: daemon + "/repo", Branch: "main"}, filepath.Join(t.TempDir(), "ws")); err != nil {
		t.Fatal(err)
	}
	if after, err := os.ReadFile(filepath.Join(host, ".git", "config")); err != nil || !bytes.Equal(before, after) {
		t.Errorf("the host's repository was changed through the link (%v):\n%s", err, after)
	}
}
