package gittest

import (
	"io"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
)

// ServeHTTP serves the repository at repo (a working tree made by Repo)
// over smart HTTP with git http-backend, as a forge does, and returns its
// clone URL. An agent without git (one of the docker pool's, in a scratch
// image) can fetch it: go-git's HTTP transport is its own.
func ServeHTTP(t testing.TB, repo string) string {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("gittest: git is needed to serve a repository over HTTP: %v", err)
	}
	backend := &cgi.Handler{Path: gitBin, Args: []string{"http-backend"}, Stderr: io.Discard,
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Dir(repo), "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_PARAMETERS='uploadpack.allowAnySHA1InWant=true'"}}
	srv := httptest.NewServer(backend)
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(repo) + "/.git"
}
