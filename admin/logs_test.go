package admin

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// fakeClient answers GetBuild and Logs from the test's functions.
type fakeClient struct {
	fleet.AdminClient // other calls are not made
	mu                sync.Mutex
	gets              int
	get               func(n int) (*fleet.BuildInfo, error)
	logs              func(r *fleet.LogsRequest) (chunks []*fleet.LogsChunk, block bool, err error)
	reqs              []*fleet.LogsRequest
}

func (f *fakeClient) GetBuild(_ context.Context, r *fleet.GetBuildRequest, _ ...grpc.CallOption) (*fleet.BuildDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	b, err := f.get(f.gets)
	if err != nil {
		return nil, err
	}
	b.Id = r.GetId()
	return &fleet.BuildDetail{Build: b}, nil
}

func (f *fakeClient) Logs(ctx context.Context, r *fleet.LogsRequest, _ ...grpc.CallOption) (grpc.ServerStreamingClient[fleet.LogsChunk], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, r)
	chunks, block, err := f.logs(r)
	return &fakeStream{ctx: ctx, chunks: chunks, block: block, err: err}, nil
}

type fakeStream struct {
	grpc.ClientStream
	ctx    context.Context
	chunks []*fleet.LogsChunk
	block  bool
	err    error
}

func (s *fakeStream) Recv() (*fleet.LogsChunk, error) {
	if len(s.chunks) > 0 {
		ch := s.chunks[0]
		s.chunks = s.chunks[1:]
		return ch, nil
	}
	if s.err != nil {
		return nil, s.err
	}
	if s.block {
		<-s.ctx.Done()
		return nil, status.FromContextError(s.ctx.Err()).Err()
	}
	return nil, io.EOF
}

func chunk(job string, off int64, data string) *fleet.LogsChunk {
	return &fleet.LogsChunk{Job: job, Stream: "out", Offset: off, Data: []byte(data)}
}

func build(state string, attempt int32, result string) *fleet.BuildInfo {
	return &fleet.BuildInfo{State: state, Attempt: attempt, Result: result}
}

func TestLogsPrefixesLinesOfEveryJob(t *testing.T) {
	c := &fakeClient{
		get: func(int) (*fleet.BuildInfo, error) { return build(StateEnded, 1, "success"), nil },
		logs: func(r *fleet.LogsRequest) ([]*fleet.LogsChunk, bool, error) {
			return []*fleet.LogsChunk{chunk("", 0, "a\nb"), chunk("test", 0, "x\ny"), chunk("test", 3, "z\n"), {Job: "test", Stream: "err", Data: []byte("oops\n")}}, false, nil
		},
	}
	var out bytes.Buffer
	b, err := Logs(context.Background(), c, LogOptions{Build: "b1"}, &out)
	if err != nil || b.GetResult() != "success" {
		t.Fatal(b, err)
	}
	want := "script | a\ntest | x\ntest | yz\ntest | oops\nscript | b\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if len(c.reqs) != 1 || !proto.Equal(c.reqs[0], &fleet.LogsRequest{Build: "b1", Attempt: 1}) {
		t.Errorf("requests %q", c.reqs)
	}
}

func TestLogsOfOneJobAreRaw(t *testing.T) {
	c := &fakeClient{
		get: func(int) (*fleet.BuildInfo, error) { return build(StateRunning, 2, ""), nil },
		logs: func(r *fleet.LogsRequest) ([]*fleet.LogsChunk, bool, error) {
			return []*fleet.LogsChunk{chunk("test", 0, "x\ny"), chunk("test", 3, "\x00z")}, false, nil
		},
	}
	var out bytes.Buffer
	if _, err := Logs(context.Background(), c, LogOptions{Build: "b1", Job: "test"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "x\ny\x00z" {
		t.Errorf("got %q", out.String())
	}
	if !proto.Equal(c.reqs[0], &fleet.LogsRequest{Build: "b1", Job: "test", Attempt: 2}) {
		t.Errorf("requests %q", c.reqs)
	}
}

func TestLogsOfABuildNotStarted(t *testing.T) {
	c := &fakeClient{get: func(int) (*fleet.BuildInfo, error) { return build(StateQueued, 0, ""), nil }}
	var out bytes.Buffer
	b, err := Logs(context.Background(), c, LogOptions{Build: "b1"}, &out)
	if err != nil || b.GetState() != StateQueued || out.Len() != 0 || len(c.reqs) != 0 {
		t.Errorf("got %v, %v, %q, %q", b, err, out.String(), c.reqs)
	}
}

func TestFollowReconnectsWithoutRepeating(t *testing.T) {
	var mu sync.Mutex
	ended, streams := false, 0
	c := &fakeClient{
		get: func(n int) (*fleet.BuildInfo, error) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case ended:
				return build(StateEnded, 1, "success"), nil
			case n == 2:
				return nil, status.Error(codes.Unavailable, "connection refused")
			}
			return build(StateRunning, 1, ""), nil
		},
		logs: func(r *fleet.LogsRequest) ([]*fleet.LogsChunk, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			streams++
			if streams == 1 {
				return []*fleet.LogsChunk{chunk("j", 0, "one\n"), chunk("j", 4, "tw")}, false, status.Error(codes.Unavailable, "error reading from server: EOF")
			}
			ended = true
			return []*fleet.LogsChunk{chunk("j", 0, "one\ntwo\n"), chunk("j", 8, "three\n")}, false, nil
		},
	}
	var out, notes bytes.Buffer
	b, err := Logs(context.Background(), c, LogOptions{Build: "b1", Follow: true, Poll: 5 * time.Millisecond, Notes: &notes}, &out)
	if err != nil || b.GetState() != StateEnded {
		t.Fatal(b, err)
	}
	if want := "j | one\nj | two\nj | three\n"; out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if !strings.Contains(notes.String(), "lost the coordinator (error reading from server: EOF)") || !strings.Contains(notes.String(), "answers again") {
		t.Errorf("notes: %q", notes.String())
	}
}

func TestFollowMovesToTheNextAttempt(t *testing.T) {
	var mu sync.Mutex
	lost, done := false, false
	c := &fakeClient{
		get: func(n int) (*fleet.BuildInfo, error) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case n == 1:
				return build(StateQueued, 0, ""), nil
			case done:
				return build(StateEnded, 2, "success"), nil
			case lost:
				return build(StateRunning, 2, ""), nil
			}
			return build(StateRunning, 1, ""), nil
		},
		logs: func(r *fleet.LogsRequest) ([]*fleet.LogsChunk, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.GetAttempt() == 1 && r.GetFollow():
				lost = true // the coordinator follows a lost attempt until the build ends
				return []*fleet.LogsChunk{chunk("j", 0, "one\n")}, true, nil
			case r.GetAttempt() == 1:
				return []*fleet.LogsChunk{chunk("j", 0, "one\n"), chunk("j", 4, "partial")}, false, nil
			}
			done = true
			return []*fleet.LogsChunk{chunk("j", 0, "again\n")}, false, nil
		},
	}
	var out, notes bytes.Buffer
	b, err := Logs(context.Background(), c, LogOptions{Build: "b1", Follow: true, Poll: 5 * time.Millisecond, Notes: &notes}, &out)
	if err != nil || b.GetResult() != "success" {
		t.Fatal(b, err)
	}
	if want := "j | one\nj | partial\nj | again\n"; out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if !strings.Contains(notes.String(), "build b1: attempt 2 started (attempt 1 was lost)") {
		t.Errorf("notes: %q", notes.String())
	}
}

func TestFollowGivesUpOnALostCoordinator(t *testing.T) {
	c := &fakeClient{get: func(int) (*fleet.BuildInfo, error) { return nil, status.Error(codes.Unavailable, "connection refused") }}
	var out bytes.Buffer
	_, err := Logs(context.Background(), c, LogOptions{Build: "b1", Follow: true, Poll: 5 * time.Millisecond, Reconnect: 30 * time.Millisecond}, &out)
	if status.Code(err) != codes.Unavailable {
		t.Errorf("got %v", err)
	}
	// without following, at once
	c.gets = 0
	_, err = Logs(context.Background(), c, LogOptions{Build: "b1"}, &out)
	if status.Code(err) != codes.Unavailable || c.gets != 1 {
		t.Errorf("got %v after %d calls", err, c.gets)
	}
}

func TestFollowStopsWithItsContext(t *testing.T) {
	c := &fakeClient{
		get: func(int) (*fleet.BuildInfo, error) { return build(StateRunning, 1, ""), nil },
		logs: func(*fleet.LogsRequest) ([]*fleet.LogsChunk, bool, error) {
			return []*fleet.LogsChunk{chunk("", 0, "half")}, true, nil
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	_, err := Logs(ctx, c, LogOptions{Build: "b1", Follow: true, Poll: 5 * time.Millisecond}, &out)
	if err == nil || ctx.Err() == nil {
		t.Errorf("got %v", err)
	}
	if out.String() != "script | half\n" {
		t.Errorf("the unfinished line is not written: %q", out.String())
	}
}

// A command's start comes as a chunk of its own: written once (a stream
// read again after a reconnect repeats it), numbered from 1, after what
// the job's earlier command left unfinished.
func TestLogsNameEachCommandOnce(t *testing.T) {
	start := func(cmd, line string) *fleet.LogsChunk {
		return &fleet.LogsChunk{Job: "test", Command: cmd, Start: true, Line: line}
	}
	chunks := []*fleet.LogsChunk{
		start("0", "make"), chunk("test", 0, "half"), start("1", "go test\n./..."),
		{Job: "test", Stream: "err", Data: []byte("FAIL\n"), Command: "1"},
	}
	c := &fakeClient{
		get: func(int) (*fleet.BuildInfo, error) { return build(StateEnded, 1, "failure"), nil },
		logs: func(r *fleet.LogsRequest) ([]*fleet.LogsChunk, bool, error) {
			return chunks, false, nil
		},
	}
	var out bytes.Buffer
	if _, err := Logs(context.Background(), c, LogOptions{Build: "b1"}, &out); err != nil {
		t.Fatal(err)
	}
	want := "test | #1 $ make\ntest | half\ntest | #2 $ go test …\ntest | FAIL\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	// Raw, and the same chunks twice (as after a reconnect): once each.
	sink := newLogSink(&out, false)
	out.Reset()
	for range 2 {
		for _, ch := range chunks {
			if err := sink.write(1, ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	if want := "#1 $ make\nhalf\n#2 $ go test …\nFAIL\n"; out.String() != want {
		t.Errorf("raw, twice: %q, want %q", out.String(), want)
	}
}
