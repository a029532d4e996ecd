package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// An artifact a real build saved downloads byte for byte once the build
// has ended: with `monkeyci artifacts get` over TLS, and from the
// build's page on the dashboard.
func TestAnEndedBuildsArtifactDownloadsByteForByte(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	up := startUp(t)
	admin := up.admin(t)
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": `
id: make
image: monkeyci/busybox:latest
save-artifacts: [{id: bin, path: out}]
script:
  - mkdir -p out && head -c 3000000 /dev/urandom > out/app && md5sum out/app
`})
	ctx := context.Background()
	d := buildToEnd(t, admin, &fleet.TriggerRequest{Url: repo, Commit: commit})
	info := d.GetBuild()
	if d.GetBuild().GetResult() != "success" {
		t.Fatalf("the build: %s %s", d.GetBuild().GetResult(), d.GetBuild().GetMessage())
	}
	var logged strings.Builder
	logs, err := admin.Logs(ctx, &fleet.LogsRequest{Build: info.GetId(), Job: "make"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		c, err := logs.Recv()
		if err != nil {
			break
		}
		logged.Write(c.GetData())
	}
	want, _, _ := strings.Cut(strings.TrimSpace(logged.String()), " ")
	if len(want) != 32 {
		t.Fatalf("the job printed no md5: %q", logged.String())
	}

	// The command line, as a person types it, over TLS.
	dir := filepath.Join(t.TempDir(), "got")
	cmd := exec.Command(testbinary.Path(t), "artifacts", "get", info.GetId()[:10], "bin", "-x", dir)
	cmd.Env = append(os.Environ(), "MONKEYCI_SERVER="+up.server, "MONKEYCI_CA="+up.ca, "MONKEYCI_TOKEN="+up.token)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("artifacts get: %v\n%s", err, out)
	}
	if got := md5File(t, filepath.Join(dir, "app")); got != want {
		t.Errorf("the CLI's download has md5 %s, the job's file %s", got, want)
	}

	// The dashboard, signed in with the token.
	jar, _ := cookiejar.New(nil)
	web := &http.Client{Jar: jar, Timeout: time.Minute}
	base := "http://" + up.http
	resp, err := web.PostForm(base+"/login", url.Values{"token": {up.token}, "next": {"/builds/" + info.GetId()}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	link := "/builds/" + info.GetId() + "/artifacts/bin"
	if !strings.Contains(string(page), link) {
		t.Fatalf("the build's page has no link %s", link)
	}
	resp, err = web.Get(base + link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the dashboard's download: %s", resp.Status)
	}
	tarFile := filepath.Join(t.TempDir(), "bin.tar")
	f, err := os.Create(tarFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := t.TempDir()
	if b, err := exec.Command("tar", "-xf", tarFile, "-C", out).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, b)
	}
	if got := md5File(t, filepath.Join(out, "app")); got != want {
		t.Errorf("the dashboard's download has md5 %s, the job's file %s", got, want)
	}
}

func md5File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
