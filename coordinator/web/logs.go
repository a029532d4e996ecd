package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/coordinator/web/view"
)

// A log is shown a page at a time: its tail first, earlier pages on
// request, so a 50 MB log costs what 64 KiB costs.
const logPageSize = 64 << 10

// Following a log: a message goes at most every followGap (bytes that
// come sooner after the last one wait for the gap to end, and go together),
// but bytes after a quiet followGap go at once; a message holds at most
// followBatch bytes.
const (
	followGap   = 200 * time.Millisecond
	followBatch = 256 << 10
)

// logKey is the stream a log request names: the build's current attempt
// unless ?attempt= says another, job "~script" for the script container,
// ?stream= out (default), err, or all (the two merged: its order index).
func (s *Server) logKey(r *http.Request) (logstore.Key, coordinator.Build, int, error) {
	b, err := s.c.Build(r.Context(), r.PathValue("id"))
	if errors.Is(err, coordinator.ErrNotFound) {
		return logstore.Key{}, b, http.StatusNotFound, errors.New("no such build")
	}
	if err != nil {
		return logstore.Key{}, b, http.StatusInternalServerError, err
	}
	q := r.URL.Query()
	key := logstore.Key{Build: b.ID, Attempt: b.Attempt, Job: r.PathValue("job"), Stream: q.Get("stream")}
	if key.Job == scriptJob {
		key.Job = ""
	}
	switch key.Stream {
	case "":
		key.Stream = logstore.Stdout
	case logstore.Stdout, logstore.Stderr:
	case streamAll: // the merged view walks the job's order index
		key.Stream = logstore.Order
	default:
		return key, b, http.StatusBadRequest, fmt.Errorf("stream %q: want out, err or all", key.Stream)
	}
	if a := q.Get("attempt"); a != "" {
		n, err := strconv.Atoi(a)
		if err != nil || n < 1 || n > b.Attempt {
			return key, b, http.StatusNotFound, fmt.Errorf("the build has no attempt %q", a)
		}
		key.Attempt = n
	}
	if key.Attempt < 1 {
		return key, b, http.StatusNotFound, errors.New("the build has not started: no logs yet")
	}
	if err := key.Validate(); err != nil {
		return key, b, http.StatusBadRequest, err
	}
	return key, b, http.StatusOK, nil
}

// logPage returns one page of a log as HTML: the tail, or with
// ?before=OFFSET the page that ends there. The page element says where it
// starts and ends (data-start, data-end) and the stream's size; a page
// starts at a line when the line is shorter than a page.
func (s *Server) logPage(w http.ResponseWriter, r *http.Request, _ session) {
	key, _, code, err := s.logKey(r)
	if err != nil {
		s.logError(w, code, err)
		return
	}
	if key.Stream == logstore.Order {
		s.mergedPage(w, r, key)
		return
	}
	size, err := s.logs.Size(key)
	if err != nil {
		s.logError(w, http.StatusInternalServerError, err)
		return
	}
	end := size
	if v := r.URL.Query().Get("before"); v != "" {
		before, err := strconv.ParseInt(v, 10, 64)
		if err != nil || before < 0 {
			http.Error(w, "before: want a byte offset", http.StatusBadRequest)
			return
		}
		end = min(before, size)
	}
	start := max(end-logPageSize, 0)
	buf := make([]byte, end-start)
	n, err := s.logs.ReadAt(key, start, buf)
	if err != nil && !errors.Is(err, io.EOF) {
		s.logError(w, http.StatusInternalServerError, err)
		return
	}
	buf = buf[:n]
	end = start + int64(n)
	if start > 0 {
		// The line cut at the page's start goes to the page before.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 && i+1 < len(buf) {
			start, buf = start+int64(i+1), buf[i+1:]
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Log-Start", strconv.FormatInt(start, 10))
	h.Set("X-Log-End", strconv.FormatInt(end, 10))
	h.Set("X-Log-Size", strconv.FormatInt(size, 10))
	fmt.Fprintf(w, `<pre class="log-page ansi" data-start="%d" data-end="%d" data-size="%d">`, start, end, size)
	_, _ = io.WriteString(w, string(view.ANSIToHTML(buf)))
	_, _ = io.WriteString(w, "</pre>\n")
}

func (s *Server) logError(w http.ResponseWriter, code int, err error) {
	if code == http.StatusInternalServerError {
		s.log.Error("reading a log", "error", err)
		http.Error(w, "the log could not be read", code)
		return
	}
	http.Error(w, err.Error(), code)
}

// followMsg is one message of a followed log: the HTML of the bytes that
// came, and the offset after them.
type followMsg struct {
	HTML   string `json:"html,omitempty"`
	Offset int64  `json:"offset"`
	Error  string `json:"error,omitempty"`
}

// followLog streams a log from ?from=OFFSET (or the Last-Event-ID a
// reconnecting browser sends) as it is written, rendered, until the build
// ends: then an "end" event.
func (s *Server) followLog(w http.ResponseWriter, r *http.Request, _ session) {
	key, b, code, err := s.logKey(r)
	if err != nil {
		s.logError(w, code, err)
		return
	}
	from := r.Header.Get("Last-Event-ID")
	if from == "" {
		from = r.URL.Query().Get("from")
	}
	offset := int64(0)
	if from != "" {
		if offset, err = strconv.ParseInt(from, 10, 64); err != nil || offset < 0 {
			http.Error(w, "from: want a byte offset", http.StatusBadRequest)
			return
		}
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	whole := make(chan struct{})
	close(whole) // an ended build's, or an older attempt's, log
	var ended <-chan struct{} = whole
	if b.State != coordinator.Ended && key.Attempt == b.Attempt {
		if ended, err = s.c.WatchEnd(ctx, b.ID); err != nil {
			s.logError(w, http.StatusInternalServerError, err)
			return
		}
	}
	if key.Stream == logstore.Order {
		s.followMerged(ctx, cancel, w, r, key, offset, ended)
		return
	}
	msgs := make(chan followMsg, 16)
	followed := make(chan error, 1)
	go func() {
		defer close(msgs)
		sink := &renderSink{ctx: ctx, out: msgs, offset: offset}
		err := s.logs.Follow(ctx, key, offset, sink, ended)
		if tail := sink.ansi.Flush(); tail != "" && err == nil {
			err = sink.send(string(tail))
		}
		followed <- err
	}()
	s.relay(w, r, cancel, offset, msgs, followed)
}

// relay sends what a follower puts on msgs as server-sent events: batched
// (followBatch bytes, or followGap of quiet), pinged while idle, and once
// msgs closes an "end" event with the follower's error. It stops the
// follower (cancel) and waits for it to end before it returns.
func (s *Server) relay(w http.ResponseWriter, r *http.Request, cancel context.CancelFunc, from int64, msgs <-chan followMsg, followed <-chan error) {
	defer func() {
		cancel()
		for range msgs { // let the follower end before we do
		}
	}()
	out := startEvents(w)
	send := func(event string, m followMsg) bool {
		data, _ := json.Marshal(m)
		return out.send(event, strconv.FormatInt(m.Offset, 10), string(data)) == nil
	}
	var (
		batch strings.Builder
		next  = from
		due   <-chan time.Time
		sent  time.Time // when the last message went
	)
	flush := func() bool {
		due = nil
		if batch.Len() == 0 {
			return true
		}
		sent = time.Now()
		m := followMsg{HTML: batch.String(), Offset: next}
		batch.Reset()
		return send("", m)
	}
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				if !flush() {
					return
				}
				end := followMsg{Offset: next}
				if err := <-followed; err != nil && r.Context().Err() == nil {
					end.Error = err.Error()
				}
				send("end", end)
				return
			}
			batch.WriteString(m.HTML)
			next = m.Offset
			if quiet := time.Since(sent); batch.Len() >= followBatch || quiet >= followGap {
				if !flush() {
					return
				}
			} else if due == nil {
				due = time.After(followGap - quiet)
			}
		case <-due:
			if !flush() {
				return
			}
		case <-ping.C:
			if out.ping() != nil {
				return
			}
		case <-s.done:
			return
		}
	}
}

// renderSink renders a follower's writes and hands them to relay; it waits
// for relay, so a slow browser slows the reading, not the memory.
type renderSink struct {
	ctx    context.Context
	out    chan<- followMsg
	offset int64 // of the bytes written so far
	ansi   view.ANSI
}

func (c *renderSink) Write(p []byte) (int, error) {
	c.offset += int64(len(p))
	// A copy: the renderer may keep a piece of it, and the follower's
	// buffer is its own.
	if err := c.send(string(c.ansi.Write(bytes.Clone(p)))); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *renderSink) send(html string) error {
	select {
	case c.out <- followMsg{HTML: html, Offset: c.offset}:
		return nil
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
}
