package web

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"

	"github.com/monkeyci/monkeyci/coordinator"
)

// artifactsOf lists what a build saved for its page. A blob store that
// cannot be reached costs the page its list, not the page: the second
// result says so in words.
func (s *Server) artifactsOf(ctx context.Context, build string) ([]coordinator.Artifact, string) {
	as, err := s.c.Artifacts(ctx, build)
	if err != nil {
		s.log.Error("listing a build's artifacts", "build", build, "error", err)
		return nil, "The artifacts could not be listed."
	}
	return as, ""
}

// download serves a file to the signed in, as a page does (anyone else is
// sent to sign in, and back to the file), and ends the transfer when the
// session's token is revoked, as a stream does.
func (s *Server) download(h handler) http.HandlerFunc {
	return s.page(func(w http.ResponseWriter, r *http.Request, ss session) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		go s.endOnRevoke(ctx, cancel, ss)
		h(w, r.WithContext(ctx), ss)
	})
}

// artifact sends one of a build's artifacts: the tar archive as the blob
// store keeps it, as an attachment named ID.tar.
func (s *Server) artifact(w http.ResponseWriter, r *http.Request, ss session) {
	id, name := r.PathValue("id"), r.PathValue("artifact")
	// The build first: only a build's own id makes the artifact's key.
	b, err := s.c.Build(r.Context(), id)
	if errors.Is(err, coordinator.ErrNotFound) {
		s.errorPage(w, http.StatusNotFound, ss, "There is no build "+id+".")
		return
	}
	if err != nil {
		s.log.Error("reading a build", "build", id, "error", err)
		s.errorPage(w, http.StatusInternalServerError, ss, "The build could not be read.")
		return
	}
	rc, a, err := s.c.OpenArtifact(r.Context(), b.ID, name)
	if errors.Is(err, coordinator.ErrNotFound) {
		s.errorPage(w, http.StatusNotFound, ss, "Build "+b.ID+" saved no artifact "+strconv.Quote(name)+".")
		return
	}
	if err != nil {
		s.log.Error("opening an artifact", "build", b.ID, "artifact", name, "error", err)
		s.errorPage(w, http.StatusServiceUnavailable, ss, "The artifact could not be read: try again later.")
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Type", "application/x-tar")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.ID + ".tar"}))
	h.Set("Content-Length", strconv.FormatInt(a.Size, 10))
	h.Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(w, rc); err != nil {
		// The status is sent: the client sees a body shorter than its length.
		s.log.Warn("sending an artifact", "build", b.ID, "artifact", a.ID, "error", err)
	}
}
