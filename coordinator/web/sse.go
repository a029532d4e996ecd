package web

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// keepAlive is how often an idle stream sends a comment, so proxies and
// browsers do not take it for dead.
const keepAlive = 20 * time.Second

// writeWait bounds one write to a stream: a client that stops reading is
// dropped rather than holding a goroutine for ever.
const writeWait = 30 * time.Second

// eventStream writes server-sent events (text/event-stream).
type eventStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startEvents answers the request with an event stream.
func startEvents(w http.ResponseWriter) *eventStream {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not hold events back
	w.WriteHeader(http.StatusOK)
	e := &eventStream{w: w, rc: http.NewResponseController(w)}
	_ = e.write("retry: 3000\n\n")
	return e
}

// send writes one event; a name of "" is the default "message" and an id
// of "" sends none (the browser sends the last id back when it reconnects).
func (e *eventStream) send(name, id, data string) error {
	var b strings.Builder
	if name != "" {
		b.WriteString("event: " + name + "\n")
	}
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	for line := range strings.SplitSeq(data, "\n") {
		b.WriteString("data: " + strings.TrimSuffix(line, "\r") + "\n")
	}
	b.WriteString("\n")
	return e.write(b.String())
}

func (e *eventStream) ping() error { return e.write(": ping\n\n") }

func (e *eventStream) write(s string) error {
	_ = e.rc.SetWriteDeadline(time.Now().Add(writeWait)) // not every writer can
	if _, err := e.w.Write([]byte(s)); err != nil {
		return err
	}
	return e.rc.Flush()
}

// watch is a live view: sections of a page, by element id, re-rendered
// when the coordinator's builds change.
type watch struct {
	// key is a cheap look at what the view shows (nil: none); when it has
	// not changed since the last render, the view is not rendered again.
	key func(ctx context.Context) (string, error)
	// render returns the view's sections: element id to HTML.
	render func(ctx context.Context) (map[string]string, error)
	// gap is the least time between two renders: changes in between are
	// taken together.
	gap time.Duration
	// every looks again even without a change (0: never), for what
	// changes with time (a running build's timeline); the key decides
	// whether it renders.
	every time.Duration
	// changes is what wakes the view (nil: any change, Changes).
	changes func() <-chan struct{}
}

// serve streams the view: once at the start, then after changes, each
// time it differs from what was sent last.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, v watch) {
	ctx := r.Context()
	out := startEvents(w)
	var tick <-chan time.Time
	if v.every > 0 {
		t := time.NewTicker(v.every)
		defer t.Stop()
		tick = t.C
	}
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	changed := v.changes
	if changed == nil {
		changed = s.c.Changes
	}
	lastKey, lastData := "", ""
	for first := true; ; first = false {
		// Taken before reading, so that a change made while rendering
		// wakes the next round.
		changes := changed()
		rendered := time.Now()
		key := ""
		var err error
		if v.key != nil {
			key, err = v.key(ctx)
		}
		if err == nil && (first || v.key == nil || key != lastKey) {
			var sections map[string]string
			if sections, err = v.render(ctx); err == nil {
				data, _ := json.Marshal(sections)
				if string(data) != lastData {
					if err := out.send("", "", string(data)); err != nil {
						return
					}
					lastData = string(data)
				}
				lastKey = key
			}
		}
		if err != nil && ctx.Err() == nil {
			s.log.Warn("a live view could not be rendered", "path", r.URL.Path, "error", err)
		}
	wait:
		for {
			select {
			case <-changes:
				break wait
			case <-tick:
				break wait
			case <-ping.C:
				if out.ping() != nil {
					return
				}
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
		if !s.pause(ctx, v.gap-time.Since(rendered)) {
			return
		}
	}
}

// pause waits d (nothing when d <= 0); false when the stream must end.
func (s *Server) pause(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}
