package web

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/coordinator/web/view"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
)

// Live updates of a build's page: at most four a second, and one every
// two seconds while it runs, for its timeline to grow.
const (
	buildGap  = 250 * time.Millisecond
	buildTick = 2 * time.Second
)

// scriptJob names the script container in log URLs: "~" is in no job id
// (logstore keys allow letters, digits, '.', '_' and '-').
const scriptJob = "~script"

// buildData is a build's page.
type buildData struct {
	Session   session
	Build     coordinator.Build
	Status    string
	AgentName string
	Live      bool // not ended: logs follow and sections update
	Graph     template.HTML
	Legend    template.HTML // what the graph's looks mean
	Timeline  view.Timeline
	Jobs      []jobView
	// Artifacts are what the build saved, each a download;
	// ArtifactsError says why they could not be listed.
	Artifacts      []coordinator.Artifact
	ArtifactsError string
}

// jobView is a job (or the script container) with its commands and logs.
type jobView struct {
	ID       string // "" for the script container
	Name     string
	Segment  string // in log URLs
	State    string
	Blocked  bool
	Action   bool   // run in the script's container
	Service  string // the ports a service job serves ("8080"), else ""
	Commands []view.Command
	Streams  []streamView
}

// streamView is one log stream of a job, shown as a pane that loads its
// tail when opened.
type streamView struct {
	Name, Label string
	Size        int64
	// Key tells the page's script which pane survives an update of the
	// section around it.
	Key string
}

func (s *Server) buildPage(w http.ResponseWriter, r *http.Request, ss session) {
	d, err := s.buildData(r.Context(), r.PathValue("id"), ss)
	if errors.Is(err, coordinator.ErrNotFound) {
		s.errorPage(w, http.StatusNotFound, ss, "There is no build "+r.PathValue("id")+".")
		return
	}
	if err != nil {
		s.log.Error("reading a build", "build", r.PathValue("id"), "error", err)
		s.errorPage(w, http.StatusInternalServerError, ss, "The build could not be read.")
		return
	}
	s.render(w, http.StatusOK, "build", d)
}

// buildEvents streams a build's sections as its events come.
func (s *Server) buildEvents(w http.ResponseWriter, r *http.Request, ss session) {
	id := r.PathValue("id")
	if _, err := s.c.Build(r.Context(), id); err != nil {
		s.notFound(w, err)
		return
	}
	s.serve(w, r, watch{
		gap: buildGap, every: buildTick,
		key: func(ctx context.Context) (string, error) { return s.buildKey(ctx, id) },
		render: func(ctx context.Context) (map[string]string, error) {
			d, err := s.buildData(ctx, id, ss)
			if err != nil {
				return nil, err
			}
			out := map[string]string{}
			for _, name := range []string{"summary", "graph", "timeline", "artifacts", "jobs"} {
				if out["build-"+name], err = s.fragment("build", name, d); err != nil {
					return nil, err
				}
			}
			return out, nil
		},
	})
}

// buildKey is a cheap look at what a build's page shows: its record and
// how many events it has. A running build's timeline also grows with the
// clock, so its key changes every buildTick (not at each look: a busy
// coordinator's other builds wake the page far more often); an ended
// build's does not.
func (s *Server) buildKey(ctx context.Context, id string) (string, error) {
	b, err := s.c.Build(ctx, id)
	if err != nil {
		return "", err
	}
	mark, err := s.c.EventMark(ctx, id, b.Attempt)
	if err != nil {
		return "", err
	}
	key := fmt.Sprint(b.State, b.Result, b.Attempt, b.Agent, b.Waiting, b.Message, mark)
	if b.State != coordinator.Ended {
		key += " " + s.now().Truncate(buildTick).String()
	}
	return key, nil
}

// buildData reads a build, its events and its log streams, and lays them
// out. Only the current attempt is drawn.
func (s *Server) buildData(ctx context.Context, id string, ss session) (buildData, error) {
	b, err := s.c.Build(ctx, id)
	if err != nil {
		return buildData{}, err
	}
	stored, err := s.c.Events(ctx, id)
	if err != nil {
		return buildData{}, err
	}
	var evs []events.Event
	for _, e := range stored {
		if e.Attempt == b.Attempt {
			evs = append(evs, e.Event)
		}
	}
	d := buildData{Session: ss, Build: b, Status: buildStatus(b), AgentName: b.Agent, Live: b.State != coordinator.Ended}
	if a, err := s.c.Agent(ctx, b.Agent); err == nil && a.Name != "" {
		d.AgentName = a.Name
	}
	jobs := view.Jobs(evs)
	d.Graph = view.LayoutGraph(jobs).SVGLinked(func(job string) string { return "#job-" + job })
	d.Legend = view.GraphLegend()
	end := s.now()
	if b.State == coordinator.Ended && !b.Ended.IsZero() {
		end = b.Ended
	}
	d.Timeline = view.BuildTimeline(evs, end)
	d.Artifacts, d.ArtifactsError = s.artifactsOf(ctx, b.ID)
	sizes := map[logstore.Key]int64{}
	if b.Attempt > 0 {
		streams, err := s.logs.Sizes(b.ID, b.Attempt)
		if err != nil {
			return buildData{}, err
		}
		for _, st := range streams {
			sizes[st.Key] = st.Size
		}
	}
	commands := view.Commands(evs)
	d.Jobs = append(d.Jobs, jobView{Name: "script", Segment: scriptJob, State: scriptState(d.Timeline, b)})
	for _, j := range jobs {
		d.Jobs = append(d.Jobs, jobView{
			ID: j.ID, Name: j.ID, Segment: url.PathEscape(j.ID), State: j.State,
			Blocked: j.State == view.StateBlocked, Action: j.Action, Service: pipeline.JoinPorts(j.Expose), Commands: commands[j.ID],
		})
	}
	for i := range d.Jobs {
		if b.Attempt == 0 {
			break // never dispatched: no logs
		}
		j := &d.Jobs[i]
		// A job whose order the agent kept gets the merged view first.
		if ord := (logstore.Key{Build: b.ID, Attempt: b.Attempt, Job: j.ID, Stream: logstore.Order}); sizes[ord] > 0 {
			out, errs := ord, ord
			out.Stream, errs.Stream = logstore.Stdout, logstore.Stderr
			j.Streams = append(j.Streams, streamView{
				Name: streamAll, Label: "stdout and stderr", Size: sizes[out] + sizes[errs],
				Key: strconv.Itoa(b.Attempt) + "/" + j.Segment + "/" + streamAll,
			})
		}
		for _, st := range []struct{ name, label string }{{logstore.Stdout, "stdout"}, {logstore.Stderr, "stderr"}} {
			key := logstore.Key{Build: b.ID, Attempt: b.Attempt, Job: j.ID, Stream: st.name}
			j.Streams = append(j.Streams, streamView{
				Name: st.name, Label: st.label, Size: sizes[key],
				Key: strconv.Itoa(b.Attempt) + "/" + j.Segment + "/" + st.name,
			})
		}
	}
	return d, nil
}

// scriptState is where the script container stands: its row's state
// (the timeline keeps it "paused" while it is).
func scriptState(t view.Timeline, b coordinator.Build) string {
	for _, row := range t.Rows {
		if row.Kind != view.RowScript {
			continue
		}
		if row.State == "" {
			return view.StateRunning
		}
		return row.State
	}
	if b.State == coordinator.Ended {
		return buildStatus(b)
	}
	return view.StateQueued
}

// notFound answers a request for a build that could not be read.
func (s *Server) notFound(w http.ResponseWriter, err error) {
	if errors.Is(err, coordinator.ErrNotFound) {
		http.Error(w, "no such build", http.StatusNotFound)
		return
	}
	s.log.Error("reading a build", "error", err)
	http.Error(w, "the build could not be read", http.StatusInternalServerError)
}

// cancel ends a queued build at once, or tells a running one's agent.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request, ss session) {
	id := r.PathValue("id")
	s.changeBuild(w, r, ss, id, s.c.Cancel(r.Context(), id))
}

// retry queues an ended build again.
func (s *Server) retry(w http.ResponseWriter, r *http.Request, ss session) {
	id := r.PathValue("id")
	s.changeBuild(w, r, ss, id, s.c.Retry(r.Context(), id))
}

// unblock lets a blocked job of a running build go on (a manual approval).
func (s *Server) unblock(w http.ResponseWriter, r *http.Request, ss session) {
	id, job := r.PathValue("id"), r.PostForm.Get("job")
	if job == "" {
		s.errorPage(w, http.StatusBadRequest, ss, "Say which job to unblock.")
		return
	}
	s.changeBuild(w, r, ss, id, s.c.Unblock(r.Context(), id, job))
}

// changeBuild answers a change to a build: back to its page when it was
// made, else a page saying why not.
func (s *Server) changeBuild(w http.ResponseWriter, r *http.Request, ss session, id string, err error) {
	if err == nil {
		http.Redirect(w, r, "/builds/"+url.PathEscape(id), http.StatusSeeOther)
		return
	}
	code, msg := http.StatusInternalServerError, err.Error()
	if st, ok := status.FromError(err); ok {
		msg = st.Message()
		switch st.Code() {
		case codes.NotFound:
			code = http.StatusNotFound
		case codes.FailedPrecondition:
			code = http.StatusConflict
		case codes.InvalidArgument:
			code = http.StatusBadRequest
		case codes.Unavailable:
			code = http.StatusServiceUnavailable
		}
	}
	switch {
	case errors.Is(err, coordinator.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, coordinator.ErrEnded), errors.Is(err, coordinator.ErrStale):
		code = http.StatusConflict
	}
	if code == http.StatusInternalServerError {
		s.log.Error("changing a build", "build", id, "path", r.URL.Path, "error", err)
	}
	s.errorPage(w, code, ss, msg)
}
