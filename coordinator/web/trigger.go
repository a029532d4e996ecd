package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// trigger queues a build of a registered repository, from the builds
// list's form (admins): its branch (the repository's HEAD when empty), its
// parameters as KEY=VALUE lines, its priority. The answer is the build's
// page.
func (s *Server) trigger(w http.ResponseWriter, r *http.Request, ss session) {
	f := r.PostForm
	repo := strings.TrimSpace(f.Get("repo"))
	if repo == "" {
		s.errorPage(w, http.StatusBadRequest, ss, "Say which repository to build.")
		return
	}
	params, err := parseParams(f.Get("params"))
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, ss, err.Error())
		return
	}
	info, err := s.admin.Trigger(r.Context(), &fleet.TriggerRequest{
		Repo: repo, Branch: strings.TrimSpace(f.Get("branch")), Params: params, Priority: f.Get("priority"),
	})
	if err != nil {
		s.changeBuild(w, r, ss, "", err)
		return
	}
	s.log.Info("build triggered from the dashboard", "build", info.GetId(), "repo", repo)
	s.changeBuild(w, r, ss, info.GetId(), nil)
}

// parseParams reads a build's parameters, one KEY=VALUE a line; blank
// lines are skipped.
func parseParams(text string) (map[string]string, error) {
	params := map[string]string{}
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if k = strings.TrimSpace(k); !ok || k == "" {
			return nil, fmt.Errorf("Parameters, line %d (%q): expected KEY=VALUE", i+1, line)
		}
		params[k] = v
	}
	return params, nil
}
