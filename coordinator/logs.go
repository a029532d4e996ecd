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
	// Without an attempt asked for, the build's latest: read again at each
	// discovery, since a queued build has none yet and a lost agent's build
	// gets a new one.
	attemptNow := func() int {
		if r.GetAttempt() != 0 {
			return int(r.GetAttempt())
		}
		if now, err := c.cfg.Store.GetBuild(ctx, b.ID); err == nil {
			return now.Attempt
		}
		return b.Attempt
	}
	ended := closed
	if r.GetFollow() {
		if ended, err = c.watchEnd(ctx, b.ID); err != nil {
			return storeError(err)
		}
	}
	chunks := make(chan *fleet.LogsChunk, 64)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	followed := map[LogKey]bool{}
	discover := func() error {
		attempt := attemptNow()
		if attempt == 0 {
			return nil // not dispatched yet
		}
		streams, err := c.cfg.Logs.Sizes(b.ID, attempt)
		if err != nil {
			return err
		}
		for _, st := range streams {
			if followed[st.Key] || r.GetJob() != "" && st.Job != r.GetJob() {
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
			followed[st.Key] = true
			wg.Add(1)
			go func(key LogKey) {
				defer wg.Done()
				if merged {
					_ = logstore.FollowMerged(fctx, c.cfg.Logs, key, 0, ended, func(p logstore.Piece) error {
						return sendChunk(fctx, chunks, &fleet.LogsChunk{Job: key.Job, Stream: p.Stream, Offset: p.Offset,
							Data: append([]byte(nil), p.Data...), Command: p.Command, Start: p.Start, Line: p.Text})
					})
					return
				}
				w := &chunkWriter{key: key, out: chunks, ctx: fctx}
				_ = c.cfg.Logs.Follow(fctx, key, 0, w, ended)
			}(st.Key)
		}
		return nil
	}
	if err := discover(); err != nil {
		return status.Errorf(codes.Internal, "reading logs: %v", err)
	}
	allDone := make(chan struct{})
	go func() {
		tick := time.NewTicker(streamDiscovery)
		defer tick.Stop()
		for done := false; !done; {
			select {
			case <-tick.C:
				_ = discover()
			case <-ended:
				_ = discover() // what appeared at the very end
				done = true
			case <-fctx.Done():
				done = true
			}
		}
		wg.Wait()
		close(allDone)
	}()
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
