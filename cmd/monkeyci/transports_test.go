package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A job sees its repository as git makes it, whichever way the agent
// fetches it: over smart HTTP, the git protocol and SSH (with a deploy
// key), `git describe --tags` and `git log -1` in the job print what the
// repository says, and its submodule's files are there; over HTTP, with
// its LFS server, a Git LFS file holds its content.
func TestAJobSeesItsRepositoryOverEachTransport(t *testing.T) {
	dockertest.RequireImage(t, "monkeyci/git:latest")
	if _, err := exec.LookPath("git-lfs"); err != nil {
		t.Fatalf("git-lfs is needed (apt-get install git-lfs): %v", err)
	}
	up := startUp(t)
	admin := up.admin(t)
	root := t.TempDir()
	git := func(t *testing.T, dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=Test", "-c", "user.email=t@example.com", "-c", "protocol.file.allow=always"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(dir, name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// lib.git: the submodule. app: the repository, tagged, with lib at
	// vendor/lib by a relative URL (so each transport fetches it its own
	// way) and a Git LFS file; app.git its bare clone, with the LFS
	// objects, as a forge keeps them.
	lib := filepath.Join(root, "lib")
	git(t, root, "init", "-q", "-b", "main", lib)
	write(lib, "l.txt", "from the submodule")
	git(t, lib, "add", "-A")
	git(t, lib, "commit", "-q", "-m", "lib")
	git(t, root, "clone", "-q", "--bare", lib, filepath.Join(root, "lib.git"))

	app := filepath.Join(root, "app")
	git(t, root, "init", "-q", "-b", "main", app)
	git(t, app, "lfs", "install", "--local")
	write(app, ".monkeyci/build.yaml", `
id: look
image: monkeyci/git:latest
script:
  - git describe --tags
  - git log -1 --format='%H %s'
  - cat vendor/lib/l.txt && echo
  - head -c 7 model.bin && echo
`)
	write(app, ".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n")
	write(app, "model.bin", "LFS content, not its pointer\n")
	git(t, app, "add", "-A")
	git(t, app, "commit", "-q", "-m", "first")
	git(t, app, "tag", "-a", "v3.1.0", "-m", "release")
	git(t, app, "submodule", "add", "-q", "../lib.git", "vendor/lib")
	git(t, app, "commit", "-q", "-m", "the submodule")
	bare := filepath.Join(root, "app.git")
	git(t, root, "clone", "-q", "--bare", app, bare)
	if out, err := exec.Command("cp", "-a", filepath.Join(app, ".git", "lfs"), bare).CombinedOutput(); err != nil {
		t.Fatalf("copying the LFS objects: %v\n%s", err, out)
	}
	want := git(t, app, "describe", "--tags") + "\n" + git(t, app, "log", "-1", "--format=%H %s") + "\nfrom the submodule\nLFS con\n"

	web := gittest.HTTPServer(t, root, "", "")
	daemon := gittest.Daemon(t, root)
	sshBase, key := gittest.SSHServer(t)
	for _, tc := range []struct{ name, url, key, script string }{
		{"acme/over-http", web.URL + "/app.git", "", ""},
		// The LFS server is on the HTTP side: the others leave the file a
		// pointer, as the repository's script.yaml says.
		{"acme/over-git-protocol", daemon + "/app.git", "", "lfs: false\n"},
		{"acme/over-ssh", sshBase + bare, key, "lfs: false\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"repos", "add", tc.name, "--url", tc.url}
			if tc.key != "" {
				args = append(args, "--ssh-key-stdin")
			}
			cmd := exec.Command(testbinary.Path(t), args...)
			cmd.Env = append(os.Environ(), "MONKEYCI_SERVER="+up.server, "MONKEYCI_CA="+up.ca, "MONKEYCI_TOKEN="+up.token)
			cmd.Stdin = strings.NewReader(tc.key)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("repos add: %v\n%s", err, out)
			}
			commit := ""
			branch := "main"
			if tc.script != "" {
				// A branch of its own that says so.
				branch = strings.TrimPrefix(tc.name, "acme/")
				git(t, app, "checkout", "-q", "-b", branch, "main")
				write(app, ".monkeyci/script.yaml", tc.script)
				git(t, app, "add", "-A")
				git(t, app, "commit", "-q", "-m", "without LFS files here")
				git(t, app, "push", "-q", "--no-verify", bare, branch) // the LFS file is there already
				git(t, app, "checkout", "-q", "main")
			}
			commit = git(t, bare, "rev-parse", branch)
			d := buildToEnd(t, admin, &fleet.TriggerRequest{Repo: tc.name, Url: tc.url, Branch: branch, Commit: commit})
			info := d.GetBuild()
			logged := jobLog(t, admin, info.GetId(), "look")
			if d.GetBuild().GetResult() != "success" {
				t.Fatalf("the build: %s %s\n%s", d.GetBuild().GetResult(), d.GetBuild().GetMessage(), logged)
			}
			w := want
			if tc.script != "" {
				w = git(t, bare, "describe", "--tags", commit) + "\n" + git(t, bare, "log", "-1", "--format=%H %s", commit) + "\nfrom the submodule\nversion\n"
			}
			if logged != w {
				t.Errorf("the job printed\n%s\nwant\n%s", logged, w)
			}
		})
	}

	// A mirror damaged on the agent's disk is replaced: the next build
	// succeeds, and its log says what happened.
	t.Run("a damaged mirror", func(t *testing.T) {
		var damaged int
		err := filepath.WalkDir(up.dataDir, func(p string, d os.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || !strings.Contains(p, "/mirror.git/") {
				return err
			}
			if strings.Contains(p, "/objects/") || strings.Contains(p, "/refs/") || strings.HasSuffix(p, "/HEAD") {
				damaged++
				return os.WriteFile(p, []byte("garbage"), 0o644)
			}
			return nil
		})
		if err != nil || damaged == 0 {
			t.Fatalf("damaging the agent's mirrors: %d files, %v", damaged, err)
		}
		d := buildToEnd(t, admin, &fleet.TriggerRequest{Repo: "acme/over-http", Url: web.URL + "/app.git", Branch: "main", Commit: git(t, bare, "rev-parse", "main")})
		info := d.GetBuild()
		logged := jobLog(t, admin, info.GetId(), "")
		if d.GetBuild().GetResult() != "success" || !strings.Contains(logged, want) {
			t.Fatalf("the build after the damage: %s %s\n%s", d.GetBuild().GetResult(), d.GetBuild().GetMessage(), logged)
		}
		if !strings.Contains(logged, "monkeyci: this agent's mirror of the repository failed") {
			t.Errorf("the build's log does not say its mirror was replaced:\n%s", logged)
		}
	})
}
