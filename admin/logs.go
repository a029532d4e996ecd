package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/logorder"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// ScriptName prefixes the script container's output (its job id is "").
const ScriptName = "script"

// Build states as the admin API says them.
const (
	StateQueued  = "queued"
	StateRunning = "running"
	StateEnded   = "ended"
)

// LogOptions say which output of a build to write, and how.
type LogOptions struct {
	Build string
	// Job picks one job's output, written as is. Empty: every job's,
	// each line prefixed "job | " (the script's "script | ").
	Job string
	// Follow writes what arrives until the build ends.
	Follow bool
	// Poll is how often a follower looks at the build: for the start of a
	// queued build, a new attempt after a lost agent, or the coordinator
	// after it was lost (default 500ms).
	Poll time.Duration
	// Reconnect is how long a follower keeps trying while the coordinator
	// cannot be reached (default 2 minutes; negative: not at all).
	Reconnect time.Duration
	// Notes gets a line when the coordinator is lost and found again and
	// when another attempt starts (nil: nowhere).
	Notes io.Writer
}

// Logs writes the output of o.Build to w: what is stored of its latest
// attempt or, when following, the output of each attempt as it arrives
// until the build ends. It returns the build as last seen (ended, when
// following without error). Bytes already written are never written twice,
// even across reconnections.
func Logs(ctx context.Context, c fleet.AdminClient, o LogOptions, w io.Writer) (*fleet.BuildInfo, error) {
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
	if o.Reconnect == 0 {
		o.Reconnect = 2 * time.Minute
	}
	if o.Notes == nil {
		o.Notes = io.Discard
	}
	f := &follower{c: c, o: o, sink: newLogSink(w, o.Job == ""), done: map[int32]bool{}}
	info, err := f.run(ctx)
	if ferr := f.sink.flush(-1); err == nil {
		err = ferr
	}
	return info, err
}

type follower struct {
	c        fleet.AdminClient
	o        LogOptions
	sink     *logSink
	done     map[int32]bool // attempts whose output was read to its end
	followed int32          // the attempt last followed (0: none yet)
	lost     time.Time      // since when the coordinator cannot be reached
}

func (f *follower) run(ctx context.Context) (*fleet.BuildInfo, error) {
	for {
		d, err := f.c.GetBuild(ctx, &fleet.GetBuildRequest{Id: f.o.Build})
		if err != nil {
			if f.retry(ctx, err) {
				continue
			}
			return nil, err
		}
		f.found()
		b := d.GetBuild()
		// A prefix named it: the whole id from now on, which no build made
		// later can make ambiguous.
		f.o.Build = b.GetId()
		a := b.GetAttempt()
		switch {
		case !f.o.Follow || b.GetState() == StateEnded:
			if a > 0 && !f.done[a] {
				if err := f.read(ctx, a, false); err != nil {
					if f.retry(ctx, err) {
						continue
					}
					return b, err
				}
			}
			return b, nil
		case b.GetState() != StateRunning || f.done[a]:
			// Queued (first, or again after a lost agent): what the last
			// attempt wrote, then wait for the next one.
			if a > 0 && !f.done[a] {
				if err := f.read(ctx, a, false); err != nil {
					if f.retry(ctx, err) {
						continue
					}
					return b, err
				}
			}
			if err := sleep(ctx, f.o.Poll); err != nil {
				return b, err
			}
		default:
			if f.followed != 0 && f.followed != a {
				fmt.Fprintf(f.o.Notes, "monkeyci: build %s: attempt %d started (attempt %d was lost)\n", f.o.Build, a, f.followed)
			}
			f.followed = a
			if err := f.follow(ctx, a); err != nil {
				if f.retry(ctx, err) {
					continue
				}
				return b, err
			}
		}
	}
}

// follow streams attempt a until it ends or another attempt replaces it.
func (f *follower) follow(ctx context.Context, a int32) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	replaced := make(chan struct{})
	watching := make(chan struct{})
	go func() {
		defer close(watching)
		tick := time.NewTicker(f.o.Poll)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			d, err := f.c.GetBuild(sctx, &fleet.GetBuildRequest{Id: f.o.Build})
			if err != nil {
				continue // the stream says so too
			}
			if b := d.GetBuild(); b.GetAttempt() != a || b.GetState() == StateQueued {
				close(replaced)
				cancel()
				return
			}
		}
	}()
	err := f.stream(sctx, a, true)
	cancel()
	<-watching
	select {
	case <-replaced:
		// the coordinator follows a lost attempt until the build ends:
		// read what it stored, and go on with the next attempt.
		if err := f.read(ctx, a, false); err != nil {
			return err
		}
		return f.sink.flush(a)
	default:
	}
	if err == nil {
		f.done[a] = true
		return f.sink.flush(a)
	}
	return err
}

// read writes what is stored of attempt a.
func (f *follower) read(ctx context.Context, a int32, follow bool) error {
	if err := f.stream(ctx, a, follow); err != nil {
		return err
	}
	f.done[a] = true
	return f.sink.flush(a)
}

func (f *follower) stream(ctx context.Context, a int32, follow bool) error {
	s, err := f.c.Logs(ctx, &fleet.LogsRequest{Build: f.o.Build, Job: f.o.Job, Follow: follow, Attempt: a})
	if err != nil {
		return err
	}
	for {
		ch, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		f.found()
		if err := f.sink.write(a, ch); err != nil {
			return err
		}
	}
}

// retry says whether to try again after err, waiting first: a follower
// keeps trying while the coordinator is unavailable, for a while.
func (f *follower) retry(ctx context.Context, err error) bool {
	if !f.o.Follow || f.o.Reconnect < 0 || ctx.Err() != nil || status.Code(err) != codes.Unavailable {
		return false
	}
	if f.lost.IsZero() {
		f.lost = time.Now()
		fmt.Fprintf(f.o.Notes, "monkeyci: lost the coordinator (%s); trying again for %s\n", status.Convert(err).Message(), f.o.Reconnect)
	}
	if time.Since(f.lost) > f.o.Reconnect {
		return false
	}
	return sleep(ctx, f.o.Poll) == nil
}

// found notes that the coordinator answers again.
func (f *follower) found() {
	if !f.lost.IsZero() {
		f.lost = time.Time{}
		fmt.Fprintln(f.o.Notes, "monkeyci: the coordinator answers again")
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// streamKey names one output stream of one attempt.
type streamKey struct {
	attempt     int32
	job, stream string
}

// logSink writes chunks: raw, or each line prefixed with its job, keeping
// each stream's unfinished line until it ends. Chunks carry their offset in
// their stream, so bytes that arrive twice are written once.
type logSink struct {
	w       io.Writer
	prefix  bool
	seen    map[streamKey]int64
	partial map[streamKey][]byte
	started map[streamKey]bool // commands whose start was written (stream: the command)
	midLine bool               // raw: the last byte written ended no line
}

func newLogSink(w io.Writer, prefix bool) *logSink {
	return &logSink{w: w, prefix: prefix, seen: map[streamKey]int64{}, partial: map[streamKey][]byte{}, started: map[streamKey]bool{}}
}

func (s *logSink) write(attempt int32, ch *fleet.LogsChunk) error {
	if ch.GetStart() {
		return s.command(attempt, ch)
	}
	k := streamKey{attempt, ch.GetJob(), ch.GetStream()}
	data, off := ch.GetData(), ch.GetOffset()
	end := off + int64(len(data))
	seen := s.seen[k]
	if end <= seen {
		return nil
	}
	if off < seen {
		data = data[seen-off:]
	}
	s.seen[k] = end
	if !s.prefix {
		if len(data) > 0 {
			s.midLine = data[len(data)-1] != '\n'
		}
		_, err := s.w.Write(data)
		return err
	}
	buf := append(s.partial[k], data...)
	last := bytes.LastIndexByte(buf, '\n')
	if last < 0 {
		s.partial[k] = buf
		return nil
	}
	s.partial[k] = append([]byte(nil), buf[last+1:]...)
	return s.lines(k.job, buf[:last+1])
}

// command writes a line that a command starts, "#N $ TEXT", numbered
// from 1, once: after what its job's earlier commands left unfinished.
func (s *logSink) command(attempt int32, ch *fleet.LogsChunk) error {
	k := streamKey{attempt, ch.GetJob(), ch.GetCommand()}
	if s.started[k] {
		return nil
	}
	s.started[k] = true
	if err := s.flushWhere(func(p streamKey) bool { return p.attempt == attempt && p.job == k.job }); err != nil {
		return err
	}
	line := []byte(logorder.Heading(ch.GetCommand(), ch.GetLine()) + "\n")
	if !s.prefix {
		if s.midLine { // a heading starts a line of its own
			line = append([]byte{'\n'}, line...)
			s.midLine = false
		}
		_, err := s.w.Write(line)
		return err
	}
	return s.lines(k.job, line)
}

// flush writes the unfinished lines of an attempt (-1: of every attempt).
func (s *logSink) flush(attempt int32) error {
	return s.flushWhere(func(k streamKey) bool { return attempt < 0 || k.attempt == attempt })
}

// flushWhere writes the unfinished lines of the streams that match.
func (s *logSink) flushWhere(match func(streamKey) bool) error {
	keys := make([]streamKey, 0, len(s.partial))
	for k, rest := range s.partial {
		if match(k) && len(rest) > 0 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b streamKey) int {
		if a.attempt != b.attempt {
			return int(a.attempt - b.attempt)
		}
		if c := strings.Compare(a.job, b.job); c != 0 {
			return c
		}
		return strings.Compare(a.stream, b.stream)
	})
	for _, k := range keys {
		rest := s.partial[k]
		delete(s.partial, k)
		if err := s.lines(k.job, append(rest, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// lines writes whole lines, each prefixed with the job's name.
func (s *logSink) lines(job string, b []byte) error {
	name := job
	if name == "" {
		name = ScriptName
	}
	var out bytes.Buffer
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		out.WriteString(name)
		out.WriteString(" | ")
		out.Write(b[:i+1])
		b = b[i+1:]
	}
	_, err := s.w.Write(out.Bytes())
	return err
}
