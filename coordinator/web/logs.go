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
		s.followMerged(ctx, w, r, key, offset, ended)
		return
	}
	chunks := make(chan []byte, 16)
	followed := make(chan error, 1)
	go func() {
		defer close(chunks)
		followed <- s.logs.Follow(ctx, key, offset, chunkSink{ctx, chunks}, ended)
	}()
	defer func() {
		cancel()
		for range chunks { // let the follower end before we do
		}
	}()

	out := startEvents(w)
	send := func(event string, m followMsg) bool {
		data, _ := json.Marshal(m)
		return out.send(event, strconv.FormatInt(m.Offset, 10), string(data)) == nil
	}
	var (
		ansi  view.ANSI
		batch []byte
		due   <-chan time.Time
		sent  time.Time // when the last message went
	)
	flush := func() bool {
		due = nil
		if len(batch) == 0 {
			return true
		}
		sent = time.Now()
		offset += int64(len(batch))
		html := ansi.Write(batch)
		batch = nil // the renderer may keep a piece of it
		return send("", followMsg{HTML: string(html), Offset: offset})
	}
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	for {
		select {
		case p, ok := <-chunks:
			if !ok {
				if !flush() {
					return
				}
				if tail := ansi.Flush(); tail != "" && !send("", followMsg{HTML: string(tail), Offset: offset}) {
					return
				}
				m := followMsg{Offset: offset}
				if err := <-followed; err != nil && r.Context().Err() == nil {
					m.Error = err.Error()
				}
				send("end", m)
				return
			}
			batch = append(batch, p...)
			if quiet := time.Since(sent); len(batch) >= followBatch || quiet >= followGap {
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

// chunkSink hands a follower's writes to the stream's loop; it waits for
// the loop, so a slow browser slows the reading, not the memory.
type chunkSink struct {
	ctx context.Context
	out chan<- []byte
}

func (c chunkSink) Write(p []byte) (int, error) {
	select {
	case c.out <- bytes.Clone(p):
		return len(p), nil
	case <-c.ctx.Done():
		return 0, c.ctx.Err()
	}
}
