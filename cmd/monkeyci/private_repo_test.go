package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/internal/wait"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A private repository builds with its credential, a token over smart
// HTTP or a deploy key over SSH, registered as a person does it, and the
// credential is seen nowhere the build reaches: not in its workspace (the
// job saves all of it, .git included, and the test reads every file) nor
// in its log, where the job prints its environment and git's config.
func TestAPrivateRepositoryIsFetchedWithItsCredentialShownNowhere(t *testing.T) {
	dockertest.RequireImage(t, "monkeyci/git:latest")
	up := startUp(t)
	admin := up.admin(t)
	repo, _ := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": `
id: look
image: monkeyci/git:latest
save-artifacts: [{id: workspace, path: .}]
script:
  - git log -1 --format=%s
  - git config --list --show-origin
  - env | sort
`})
	const token = "t0ken-0f-the-f0rge"
	web := gittest.HTTPServer(t, filepath.Dir(repo), "ci", token)
	sshBase, key := gittest.SSHServer(t)
	hidden := append(source.KeyLines(key), token)

	for _, tc := range []struct{ name, url string }{
		{"acme/over-https", "http://ci:" + token + "@" + strings.TrimPrefix(web.URL, "http://") + "/" + filepath.Base(repo) + "/.git"},
		{"acme/over-ssh", sshBase + repo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"repos", "add", tc.name, "--url", tc.url}
			if strings.HasPrefix(tc.url, "ssh://") {
				args = append(args, "--ssh-key-stdin")
			}
			cmd := exec.Command(testbinary.Path(t), args...)
			cmd.Env = append(os.Environ(), "MONKEYCI_SERVER="+up.server, "MONKEYCI_CA="+up.ca, "MONKEYCI_TOKEN="+up.token)
			cmd.Stdin = strings.NewReader(key)
			if out, err := cmd.CombinedOutput(); err != nil || containsAny(string(out), hidden) {
				t.Fatalf("repos add: %v\n%s", err, out)
			}
			bare, _ := source.SplitCredentials(tc.url)
			d := buildToEnd(t, admin, &fleet.TriggerRequest{Repo: tc.name, Url: bare, Branch: "master"})
			info := d.GetBuild()
			logged := jobLog(t, admin, info.GetId(), "look")
			if d.GetBuild().GetResult() != "success" {
				t.Fatalf("the build: %s %s\n%s", d.GetBuild().GetResult(), d.GetBuild().GetMessage(), logged)
			}
			if !strings.HasPrefix(logged, "test commit\n") {
				t.Errorf("git log -1 in the job printed no commit message:\n%s", logged)
			}
			if containsAny(logged+d.GetBuild().GetMessage(), hidden) {
				t.Errorf("the log shows the credential:\n%s", logged)
			}
			for _, se := range d.GetEvents() {
				if containsAny(string(se.GetEvent()), hidden) {
					t.Errorf("an event shows the credential: %s", se.GetEvent())
				}
			}
			ws := filepath.Join(t.TempDir(), "ws")
			get := exec.Command(testbinary.Path(t), "artifacts", "get", info.GetId(), "workspace", "-x", ws)
			get.Env = cmd.Env
			if out, err := get.CombinedOutput(); err != nil {
				t.Fatalf("artifacts get: %v\n%s", err, out)
			}
			if _, err := os.Stat(filepath.Join(ws, ".git")); err != nil {
				t.Fatalf("the saved workspace has no .git: %v", err)
			}
			_ = filepath.Walk(ws, func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode().IsRegular() {
					if b, err := os.ReadFile(p); err == nil && containsAny(string(b), hidden) {
						t.Errorf("the workspace's %s holds the credential", strings.TrimPrefix(p, ws))
					}
				}
				return nil
			})
		})
	}
}

func containsAny(s string, secrets []string) bool {
	for _, x := range secrets {
		if x != "" && bytes.Contains([]byte(s), []byte(x)) {
			return true
		}
	}
	return false
}

// jobLog is the whole log of a job of a build.
// buildToEnd triggers a build and waits for its end.
func buildToEnd(t *testing.T, admin fleet.AdminClient, req *fleet.TriggerRequest) *fleet.BuildDetail {
	t.Helper()
	ctx := context.Background()
	info, err := admin.Trigger(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var d *fleet.BuildDetail
	wait.For(t, "the build to end", func() bool {
		d, err = admin.GetBuild(ctx, &fleet.GetBuildRequest{Id: info.GetId()})
		return err == nil && d.GetBuild().GetState() == "ended"
	})
	return d
}

func jobLog(t *testing.T, admin fleet.AdminClient, build, job string) string {
	t.Helper()
	logs, err := admin.Logs(context.Background(), &fleet.LogsRequest{Build: build, Job: job})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for {
		c, err := logs.Recv()
		if err != nil {
			return b.String()
		}
		b.Write(c.GetData())
	}
}
