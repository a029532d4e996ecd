package coordinator

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// streamDiscovery is how often a follower looks for streams that appeared
// (a job that started); the bytes of known streams arrive as written.
const streamDiscovery = 200 * time.Millisecond

// Logs sends a build's stored output and, when asked, follows it until the
// build ends.
func (s *AdminServer) Logs(r *fleet.LogsRequest, out fleet.Admin_LogsServer) error {
	c, ctx := s.c, out.Context()
	id, err := s.resolveBuild(ctx, r.GetBuild())
	if err != nil {
		return err
	}
	b, err := c.cfg.Store.GetBuild(ctx, id)
	if err != nil {
		return storeError(err)
	}
	ended := closed
	if r.GetFollow() {
		if ended, err = c.watchEnd(ctx, b.ID); err != nil {
			return storeError(err)
		}
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f := &logFollower{c: c, req: r, ctx: ctx, fctx: fctx, build: b.ID, attempt: b.Attempt, ended: ended,
		chunks: make(chan *fleet.LogsChunk, 64), followed: map[LogKey]bool{}}
	if err := f.discover(); err != nil {
		return status.Errorf(codes.Internal, "reading logs: %v", err)
	}
	allDone := make(chan struct{})
	go func() {
		f.discoverUntilEnd()
		f.wg.Wait()
		close(allDone)
	}()
	return sendChunks(out, f.chunks, allDone)
}

// logFollower follows the streams of one Logs request, each in its own
// goroutine, into chunks.
type logFollower struct {
	c   *Coordinator
	req *fleet.LogsRequest
	// ctx is the request's; fctx ends the followers when Logs returns.
	ctx, fctx context.Context
	build     string
	attempt   int // the build's when the request came
	ended     <-chan struct{}
	chunks    chan *fleet.LogsChunk

	wg       sync.WaitGroup
	followed map[LogKey]bool // touched by discover alone
}

// attemptNow is the attempt asked for or, without one, the build's
// latest: read again at each discovery, since a queued build has none yet
// and a lost agent's build gets a new one.
func (f *logFollower) attemptNow() int {
	if f.req.GetAttempt() != 0 {
		return int(f.req.GetAttempt())
	}
	if now, err := f.c.cfg.Store.GetBuild(f.ctx, f.build); err == nil {
		return now.Attempt
	}
	return f.attempt
}

// discover starts following the streams asked for that are not followed
// yet.
func (f *logFollower) discover() error {
	attempt := f.attemptNow()
	if attempt == 0 {
		return nil // not dispatched yet
	}
	streams, err := f.c.logs.Sizes(f.build, attempt)
	if err != nil {
		return err
	}
	for _, st := range streams {
		if f.followed[st.Key] || f.req.GetJob() != "" && st.Job != f.req.GetJob() {
			continue
		}
		// A job with an order index is followed through it: its
		// streams merged in the order they were written. The agent
		// sends the index before the bytes it names, so a job's index
		// is stored before its streams.
		merged := logstore.HasOrder(streams, st.Job)
		if merged && st.Stream != logstore.Order {
			continue
		}
		f.followed[st.Key] = true
		f.wg.Add(1)
		go func(key LogKey) {
			defer f.wg.Done()
			f.follow(key, merged)
		}(st.Key)
	}
	return nil
}

// follow copies one stream (merged: a job's streams, through its order
// index) into chunks until the build ends.
func (f *logFollower) follow(key LogKey, merged bool) {
	if merged {
		_ = logstore.FollowMerged(f.fctx, f.c.logs, key, 0, f.ended, func(p logstore.Piece) error {
			return sendChunk(f.fctx, f.chunks, &fleet.LogsChunk{Job: key.Job, Stream: p.Stream, Offset: p.Offset,
				Data: append([]byte(nil), p.Data...), Command: p.Command, Start: p.Start, Line: p.Text})
		})
		return
	}
	w := &chunkWriter{key: key, out: f.chunks, ctx: f.fctx}
	_ = f.c.logs.Follow(f.fctx, key, 0, w, f.ended)
}

// discoverUntilEnd looks for new streams every streamDiscovery, until the
// build ends or the request does.
func (f *logFollower) discoverUntilEnd() {
	tick := time.NewTicker(streamDiscovery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			_ = f.discover()
		case <-f.ended:
			_ = f.discover() // what appeared at the very end
			return
		case <-f.fctx.Done():
			return
		}
	}
}

// sendChunks sends chunks to out until allDone, then what is left.
func sendChunks(out fleet.Admin_LogsServer, chunks <-chan *fleet.LogsChunk, allDone <-chan struct{}) error {
	for {
		select {
		case ch := <-chunks:
			if err := out.Send(ch); err != nil {
				return err
			}
		case <-allDone:
			for {
				select {
				case ch := <-chunks:
					if err := out.Send(ch); err != nil {
						return err
					}
				default:
					return nil
				}
			}
		}
	}
}

// closed is an ended channel for logs that are not followed.
var closed = func() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// chunkWriter turns a follower's writes into chunks with offsets.
type chunkWriter struct {
	key    LogKey
	offset int64
	out    chan<- *fleet.LogsChunk
	ctx    context.Context
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	ch := &fleet.LogsChunk{Job: w.key.Job, Stream: w.key.Stream, Offset: w.offset, Data: append([]byte(nil), p...)}
	if err := sendChunk(w.ctx, w.out, ch); err != nil {
		return 0, err
	}
	w.offset += int64(len(p))
	return len(p), nil
}

// sendChunk hands ch to the sending loop, unless ctx ends first.
func sendChunk(ctx context.Context, out chan<- *fleet.LogsChunk, ch *fleet.LogsChunk) error {
	select {
	case out <- ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
