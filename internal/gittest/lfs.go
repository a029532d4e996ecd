package gittest

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// LFSHandler serves the Git LFS files of the repositories under root, as
// a forge's LFS server does, for downloads: the batch API at
// REPO/info/lfs/objects/batch (REPO a git dir, like app.git or app/.git),
// and each object at REPO/info/lfs/objects/OID, read from the git dir's
// own lfs/objects, where `git add` of a tracked file keeps it.
func LFSHandler(root string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, rest, ok := strings.Cut(r.URL.Path, "/info/lfs/objects/")
		gitDir := filepath.Join(root, filepath.FromSlash(filepath.Clean("/"+repo)))
		switch {
		case !ok:
			http.NotFound(w, r)
		case r.Method == http.MethodPost && rest == "batch":
			lfsBatch(w, r, gitDir, "http://"+r.Host+repo+"/info/lfs/objects/")
		case r.Method == http.MethodGet && oidPattern.MatchString(rest):
			http.ServeFile(w, r, lfsObject(gitDir, rest))
		default:
			http.Error(w, "not an LFS request this server knows", http.StatusNotFound)
		}
	})
}

var oidPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func lfsObject(gitDir, oid string) string {
	return filepath.Join(gitDir, "lfs", "objects", oid[:2], oid[2:4], oid)
}

type lfsObjectRef struct {
	OID     string               `json:"oid"`
	Size    int64                `json:"size"`
	Actions map[string]lfsAction `json:"actions,omitempty"`
	Error   *lfsError            `json:"error,omitempty"`
}

type lfsAction struct {
	Href string `json:"href"`
}

type lfsError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// lfsBatch answers a batch request: where to download each object it
// holds, and a 404 for each it does not. Uploads are not taken.
func lfsBatch(w http.ResponseWriter, r *http.Request, gitDir, objects string) {
	var req struct {
		Operation string         `json:"operation"`
		Objects   []lfsObjectRef `json:"objects"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Operation != "download" {
		http.Error(w, "only downloads are served", http.StatusUnprocessableEntity)
		return
	}
	var resp struct {
		Transfer string         `json:"transfer"`
		Objects  []lfsObjectRef `json:"objects"`
	}
	resp.Transfer = "basic"
	for _, o := range req.Objects {
		out := lfsObjectRef{OID: o.OID, Size: o.Size}
		if fi, err := os.Stat(lfsObject(gitDir, o.OID)); oidPattern.MatchString(o.OID) && err == nil && fi.Size() == o.Size {
			out.Actions = map[string]lfsAction{"download": {Href: objects + o.OID}}
		} else {
			out.Error = &lfsError{Code: http.StatusNotFound, Message: "no such object"}
		}
		resp.Objects = append(resp.Objects, out)
	}
	w.Header().Set("Content-Type", "application/vnd.git-lfs+json")
	_ = json.NewEncoder(w).Encode(resp)
}
