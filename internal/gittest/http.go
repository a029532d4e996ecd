package gittest

import (
	"io"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// HTTPHandler serves the repositories under root over smart HTTP with git
// http-backend, as a forge does; config is given to git as -c options.
func HTTPHandler(t testing.TB, root string, config ...string) http.Handler {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("gittest: git is needed to serve repositories over HTTP: %v", err)
	}
	env := []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}
	if len(config) > 0 {
		quoted := make([]string, len(config))
		for i, c := range config {
			quoted[i] = "'" + c + "'"
		}
		env = append(env, "GIT_CONFIG_PARAMETERS="+strings.Join(quoted, " "))
	}
	return &cgi.Handler{Path: gitBin, Args: []string{"http-backend"}, Env: env, Stderr: io.Discard}
}

// ServeHTTP serves the repository at repo (a working tree made by Repo)
// over smart HTTP and returns its clone URL. An agent without git (one of
// the docker pool's, in a scratch image) can fetch it: go-git's HTTP
// transport is its own.
func ServeHTTP(t testing.TB, repo string) string {
	t.Helper()
	srv := httptest.NewServer(HTTPHandler(t, filepath.Dir(repo), "uploadpack.allowAnySHA1InWant=true"))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + filepath.Base(repo) + "/.git"
}

// HTTPServer serves the repositories under root over smart HTTP, as
// HTTPHandler does, with their Git LFS files (LFSHandler), letting in only
// user with password when password is set (HTTP basic authorization, as
// a forge takes a token), until the test ends.
func HTTPServer(t testing.TB, root, user, password string, config ...string) *httptest.Server {
	t.Helper()
	git, lfs := HTTPHandler(t, root, config...), LFSHandler(root)
	backend := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/info/lfs/") {
			lfs.ServeHTTP(w, r)
			return
		}
		git.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if password != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}
