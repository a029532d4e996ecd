package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
)

// A repository's URL credential, registered with `repos add`, fetches its
// builds and appears on no surface: not in the CLI's outputs, the
// dashboard's pages, the events stored, the coordinator's and the agent's
// logs, the data dir's files, nor the error of a clone that fails with a
// wrong credential whose server repeats it in its answer.
func TestAURLCredentialIsUsedAndNeverShown(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	const (
		user  = "deploy"
		good  = "tok3n-right-9f8e7d"
		wrong = "tok3n-wrong-1a2b3c"
	)
	// The job prints what a build could reach of its source's origin.
	repo, _ := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": "id: look\nimage: monkeyci/busybox:latest\n" +
		"script: ['cat .git/config || true', 'env', 'echo looked']\n"})
	var fetched atomic.Int32
	git := gittest.HTTPHandler(t, filepath.Dir(repo), "uploadpack.allowAnySHA1InWant=true")
	forge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, pass, ok := r.BasicAuth()
		switch {
		case !ok:
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
		case u != user || pass != good:
			// A hostile or careless server repeats what it was sent.
			http.Error(w, "refused "+u+":"+pass+" ("+r.Header.Get("Authorization")+")", http.StatusForbidden)
		default:
			fetched.Add(1)
			git.ServeHTTP(w, r)
		}
	}))
	defer forge.Close()
	cloneURL := func(token string) string {
		return strings.Replace(forge.URL, "http://", "http://"+user+":"+token+"@", 1) + "/" + filepath.Base(repo) + "/.git"
	}

	p := startUp(t)
	var shown strings.Builder // every surface's text, to search at the end
	client := func(stdin string, args ...string) (int, string) {
		withStdin(t, stdin)
		code, out, errOut := cli(t, append(args, "--server", p.server, "--ca", p.ca, "--token", p.token)...)
		fmt.Fprintf(&shown, "$ monkeyci %s\n%s%s", args[0], out, errOut) // not what was typed
		return code, out + errOut
	}
	if code, out := client("hook-secret\n", "repos", "add", "acme/app", "--url", cloneURL(good), "--webhook-secret-stdin"); code != 0 {
		t.Fatalf("repos add: exit %d\n%s", code, out)
	}
	if code, out := client("", "repos", "add", "acme/bad", "--url", cloneURL(wrong)); code != 0 {
		t.Fatalf("repos add: exit %d\n%s", code, out)
	}
	code, out := client("", "trigger", "--repo", "acme/app", "--wait")
	if code != 0 || fetched.Load() == 0 || !strings.Contains(out, "looked") {
		t.Fatalf("the build with the right credential: exit %d, %d authorized fetches\n%s", code, fetched.Load(), out)
	}
	appBuild := strings.SplitN(out, "\n", 2)[0]
	code, out = client("", "trigger", "--repo", "acme/bad", "--wait")
	if code != 1 {
		t.Fatalf("the build with a wrong credential: exit %d, want 1\n%s", code, out)
	}
	badBuild := strings.SplitN(out, "\n", 2)[0]
	if code, out := client("", "builds", "show", badBuild); code != 0 || !strings.Contains(out, "authorization failed") {
		t.Errorf("the failed clone's build does not say why (authorization failed):\n%s", out)
	}
	for _, args := range [][]string{
		{"repos", "ls"}, {"repos", "ls", "-o", "json"}, {"builds", "ls"}, {"builds", "ls", "-o", "json"},
		{"builds", "show", appBuild, "-o", "json"}, {"builds", "show", badBuild, "-o", "json"},
		{"logs", appBuild}, {"logs", badBuild},
	} {
		if code, out := client("", args...); code != 0 {
			t.Errorf("%v: exit %d\n%s", args, code, out)
		}
	}

	// The dashboard, signed in as the admin.
	jar, _ := cookiejar.New(nil)
	web := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	base := "http://" + p.http
	if resp, err := web.PostForm(base+"/login", url.Values{"token": {p.token}}); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	for _, path := range []string{"/builds", "/builds/" + appBuild, "/builds/" + badBuild, "/builds/" + appBuild + "/logs/look", "/agents"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		resp, err := web.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body) // a stream ends with its context
		resp.Body.Close()
		cancel()
		if resp.StatusCode != http.StatusOK || path == "/builds" && (!strings.Contains(string(body), appBuild) || !strings.Contains(string(body), badBuild)) {
			t.Errorf("GET %s: %s, not the page asked for:\n%s", path, resp.Status, body)
		}
		fmt.Fprintf(&shown, "GET %s\n%s\n", path, body)
	}

	fmt.Fprintf(&shown, "the coordinator's and the agent's log:\n%s\n", p.stderr)
	surfaces := shown.String()
	for _, file := range filesUnder(t, p.dataDir) {
		data, _ := os.ReadFile(file)
		fmt.Fprintf(&shown, "%s: %d bytes\n", file, len(data))
		surfaces += string(data)
	}
	for _, token := range []string{good, wrong} {
		for _, form := range []string{token, base64.StdEncoding.EncodeToString([]byte(user + ":" + token))} {
			if i := strings.Index(surfaces, form); i >= 0 {
				t.Errorf("%q is shown, in:\n%s", form, surfaces[max(0, i-300):min(len(surfaces), i+100)])
			}
		}
	}
	if !strings.Contains(surfaces, "looked") || !strings.Contains(surfaces, "***@") {
		t.Errorf("the surfaces searched do not hold what they should (the job's output, the masked URL):\n%s", shown.String())
	}
}

// filesUnder lists the regular files under dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
