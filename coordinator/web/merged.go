package web

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/coordinator/web/view"
	"github.com/monkeyci/monkeyci/logorder"
)

// A job's merged view (?stream=all) shows its stdout and stderr in the
// order the agent read them, stderr marked, each command's line above its
// output. It walks the job's order index (logorder): its pages and its
// offsets (data-start, from, the event ids) are those of the index.
const streamAll = "all"

// indexWindow is how much of the index a page looks at, at most: some
// thousands of records, far more than a page of output needs.
const indexWindow = 128 << 10

// mergedHTML renders the pieces of a merged view, one ANSI renderer per
// stream: a colour, an escape sequence or a character split between two
// records of a stream goes on across them, as in the stream's own pane.
type mergedHTML struct{ out, err view.ANSI }

func (m *mergedHTML) piece(p logstore.Piece) string {
	if p.Start {
		return `<span class="cmd">` + html.EscapeString(logorder.Heading(p.Command, p.Text)) + "</span>\n"
	}
	if p.Stream == logstore.Stderr {
		return `<span class="stderr">` + string(m.err.Write(p.Data)) + `</span>`
	}
	return string(m.out.Write(p.Data))
}

// flush renders what the renderers hold back: at the end of a page or a
// followed log.
func (m *mergedHTML) flush() string {
	h := string(m.out.Flush())
	if tail := m.err.Flush(); tail != "" {
		h += `<span class="stderr">` + string(tail) + `</span>`
	}
	return h
}

// indexRecord is a record of the index and where it starts there.
type indexRecord struct {
	logorder.Record
	at int64
}

// mergedPage answers a page of the merged view: the records before
// ?before= (or the end) that name about a page of output.
func (s *Server) mergedPage(w http.ResponseWriter, r *http.Request, key logstore.Key) {
	size, err := s.logs.Size(key)
	if err != nil {
		s.logError(w, http.StatusInternalServerError, err)
		return
	}
	end := size
	if v := r.URL.Query().Get("before"); v != "" {
		before, err := strconv.ParseInt(v, 10, 64)
		if err != nil || before < 0 {
			http.Error(w, "before: want an offset", http.StatusBadRequest)
			return
		}
		end = min(before, size)
	}
	recs, end, err := s.indexBefore(key, end)
	if err != nil {
		s.logError(w, http.StatusInternalServerError, err)
		return
	}
	// Back from the end, records until they name a page of output.
	first, total := len(recs), int64(0)
	for first > 0 && total < logPageSize {
		first--
		total += recs[first].Length
	}
	start := end
	if first < len(recs) {
		start = recs[first].at
	}
	var (
		out    strings.Builder
		render mergedHTML
	)
	for _, rec := range recs[first:] {
		p := logstore.Piece{Command: rec.Command, Start: rec.Start, Text: rec.Text, Stream: rec.Stream}
		if !rec.Start {
			// A record longer than a page shows its tail; the stream's own
			// pane has all of it.
			n := min(rec.Length, logPageSize)
			p.Offset = rec.Offset + rec.Length - n
			data := make([]byte, n)
			k := key
			k.Stream = rec.Stream
			got, err := s.logs.ReadAt(k, p.Offset, data)
			if err != nil && !errors.Is(err, io.EOF) {
				s.logError(w, http.StatusInternalServerError, err)
				return
			}
			p.Data = data[:got]
		}
		out.WriteString(render.piece(p))
	}
	out.WriteString(render.flush())
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Log-Start", strconv.FormatInt(start, 10))
	h.Set("X-Log-End", strconv.FormatInt(end, 10))
	h.Set("X-Log-Size", strconv.FormatInt(size, 10))
	fmt.Fprintf(w, `<pre class="log-page ansi" data-start="%d" data-end="%d" data-size="%d">`, start, end, size)
	_, _ = io.WriteString(w, out.String())
	_, _ = io.WriteString(w, "</pre>\n")
}

// indexBefore reads the index's whole records that end at or before end
// (at most indexWindow of them), and returns them with where they end.
func (s *Server) indexBefore(key logstore.Key, end int64) ([]indexRecord, int64, error) {
	from := max(end-indexWindow, 0)
	buf := make([]byte, end-from)
	n, err := s.logs.ReadAt(key, from, buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, err
	}
	buf = buf[:n]
	// Whole lines only: from the first line start, to the last line end.
	if from > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			return nil, end, nil
		}
		from, buf = from+int64(i+1), buf[i+1:]
	}
	buf = buf[:bytes.LastIndexByte(buf, '\n')+1]
	end = from + int64(len(buf))
	var recs []indexRecord
	for at := from; len(buf) > 0; {
		i := bytes.IndexByte(buf, '\n')
		if rec, err := logorder.Parse(string(buf[:i])); err == nil {
			recs = append(recs, indexRecord{rec, at})
		}
		at += int64(i + 1)
		buf = buf[i+1:]
	}
	return recs, end, nil
}

// followMerged streams the merged view from index offset from on, as
// followLog streams one stream.
func (s *Server) followMerged(ctx context.Context, cancel context.CancelFunc, w http.ResponseWriter, r *http.Request, key logstore.Key, from int64, ended <-chan struct{}) {
	msgs := make(chan followMsg, 16)
	followed := make(chan error, 1)
	go func() {
		defer close(msgs)
		var render mergedHTML
		send := func(m followMsg) error {
			select {
			case msgs <- m:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		next := from
		err := logstore.FollowMerged(ctx, s.logs, key, from, ended, func(p logstore.Piece) error {
			next = p.Next
			return send(followMsg{HTML: render.piece(p), Offset: p.Next})
		})
		if tail := render.flush(); tail != "" && err == nil {
			err = send(followMsg{HTML: tail, Offset: next})
		}
		followed <- err
	}()
	s.relay(w, r, cancel, from, msgs, followed)
}
