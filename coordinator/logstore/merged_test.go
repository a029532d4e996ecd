package logstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/logorder"
)

func records(recs ...logorder.Record) []byte {
	var b []byte
	for _, r := range recs {
		b = r.Append(b)
	}
	return b
}

// pieces renders what FollowMerged passes on, one piece a line.
type pieces struct{ got []string }

func (p *pieces) emit(pc Piece) error {
	if pc.Start {
		p.got = append(p.got, fmt.Sprintf("start %s %q @%d", pc.Command, pc.Text, pc.Next))
	} else {
		p.got = append(p.got, fmt.Sprintf("%s %s %d %q @%d", pc.Stream, pc.Command, pc.Offset, pc.Data, pc.Next))
	}
	return nil
}

func mustWrite(t *testing.T, s *Store, k Key, off int64, data []byte) {
	t.Helper()
	if _, err := s.Write(k, off, data); err != nil {
		t.Fatal(err)
	}
}

// A job's output comes merged in its index's order; a line of the index
// that is not a record is skipped, the rest read on.
func TestFollowMergedFollowsTheIndex(t *testing.T) {
	s := open(t)
	idx := records(
		logorder.Record{Command: "0", Start: true, Text: "make"},
		logorder.Record{Command: "0", Stream: "err", Offset: 0, Length: 4},
	)
	idx = append(idx, "garbage line\n"...)
	idx = append(idx, records(logorder.Record{Command: "0", Stream: "out", Offset: 0, Length: 3})...)
	mustWrite(t, s, key("j", Order), 0, idx)
	mustWrite(t, s, key("j", Stdout), 0, []byte("out"))
	mustWrite(t, s, key("j", Stderr), 0, []byte("err\n"))
	var p pieces
	if err := FollowMerged(context.Background(), s, key("j", Stdout), 0, closed(), p.emit); err != nil {
		t.Fatal(err)
	}
	want := []string{`start 0 "make" @11`, `err 0 0 "err\n" @19`, fmt.Sprintf(`out 0 0 "out" @%d`, len(idx))}
	if strings.Join(p.got, "\n") != strings.Join(want, "\n") {
		t.Errorf("merged:\n%s\nwant\n%s", strings.Join(p.got, "\n"), strings.Join(want, "\n"))
	}
	// From an offset in the index on, only what follows it.
	p = pieces{}
	if err := FollowMerged(context.Background(), s, key("j", Stdout), 19, closed(), p.emit); err != nil || len(p.got) != 1 {
		t.Errorf("from 19: %v, %v; want the out piece alone", p.got, err)
	}
}

// Bytes the index names before they are stored are waited for, without
// polling; bytes that never come end the wait when the build ends.
func TestFollowMergedWaitsForTheBytesItNames(t *testing.T) {
	s := open(t)
	mustWrite(t, s, key("j", Order), 0, records(
		logorder.Record{Stream: "out", Offset: 0, Length: 6},
		logorder.Record{Stream: "err", Offset: 0, Length: 5},
	))
	mustWrite(t, s, key("j", Stdout), 0, []byte("hal"))
	ended := make(chan struct{})
	var p pieces
	done := make(chan error, 1)
	go func() { done <- FollowMerged(context.Background(), s, key("j", Order), 0, ended, p.emit) }()
	time.Sleep(50 * time.Millisecond) // most likely waiting by now; either way the answer is the same
	mustWrite(t, s, key("j", Stdout), 3, []byte("f!\n"))
	mustWrite(t, s, key("j", Stderr), 0, []byte("ab")) // never all of it
	close(ended)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("FollowMerged did not end with the build")
	}
	// The bytes that did not all come leave the follower at their record.
	want := []string{`out  0 "half!\n" @8`, `err  0 "ab" @8`}
	if strings.Join(p.got, "\n") != strings.Join(want, "\n") {
		t.Errorf("merged:\n%s\nwant\n%s", strings.Join(p.got, "\n"), strings.Join(want, "\n"))
	}
}

// A record longer than a piece comes in pieces; all but the last say to
// resume at the record.
func TestFollowMergedSplitsALongRecord(t *testing.T) {
	s := open(t)
	n := maxPiece + 10
	idx := records(logorder.Record{Command: "0", Stream: "out", Offset: 0, Length: int64(n)})
	mustWrite(t, s, key("j", Order), 0, idx)
	mustWrite(t, s, key("j", Stdout), 0, []byte(strings.Repeat("x", n)))
	var got []Piece
	err := FollowMerged(context.Background(), s, key("j", Order), 0, closed(), func(p Piece) error {
		p.Data = append([]byte(nil), p.Data...)
		got = append(got, p)
		return nil
	})
	if err != nil || len(got) != 2 || len(got[0].Data) != maxPiece || got[0].Next != 0 ||
		got[1].Offset != maxPiece || len(got[1].Data) != 10 || got[1].Next != int64(len(idx)) {
		t.Errorf("pieces %d, %v", len(got), err)
	}
}

func closed() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// The index may be stored, and so followed, in pieces that cut its lines
// anywhere (the agent sends it in chunks of a size): cut into single
// bytes, it merges the same.
func TestFollowMergedJoinsCutLines(t *testing.T) {
	s := open(t)
	idx := records(
		logorder.Record{Command: "0", Start: true, Text: "make"},
		logorder.Record{Command: "0", Stream: "out", Offset: 0, Length: 3},
		logorder.Record{Command: "0", Stream: "err", Offset: 0, Length: 4},
	)
	mustWrite(t, s, key("j", Stdout), 0, []byte("out"))
	mustWrite(t, s, key("j", Stderr), 0, []byte("err\n"))
	var whole, cut pieces
	mustWrite(t, s, key("j", Order), 0, idx)
	if err := FollowMerged(context.Background(), s, key("j", Order), 0, closed(), whole.emit); err != nil {
		t.Fatal(err)
	}
	w := &mergeWriter{ctx: context.Background(), src: s, key: key("j", Order), ended: closed(), emit: cut.emit}
	for i := range idx {
		if n, err := w.Write(idx[i : i+1]); n != 1 || err != nil {
			t.Fatalf("byte %d: %d, %v", i, n, err)
		}
	}
	if strings.Join(cut.got, "\n") != strings.Join(whole.got, "\n") || len(whole.got) != 3 {
		t.Errorf("cut into bytes:\n%s\nwhole:\n%s", strings.Join(cut.got, "\n"), strings.Join(whole.got, "\n"))
	}
}

// A line longer than any record is dropped whole, to its end, however it
// comes in; the offsets after it stay true.
func TestFollowMergedDropsAnOverlongLine(t *testing.T) {
	s := open(t)
	mustWrite(t, s, key("j", Stdout), 0, []byte("ok\n"))
	tail := records(logorder.Record{Stream: "out", Offset: 0, Length: 3})
	long := strings.Repeat("x", logorder.MaxLine) + string(tail[:len(tail)-1]) + "\n" // ends like a record
	idx := append([]byte(long), tail...)
	var p pieces
	w := &mergeWriter{ctx: context.Background(), src: s, key: key("j", Order), ended: closed(), emit: p.emit}
	for len(idx) > 0 {
		k := min(len(idx), 1000)
		if _, err := w.Write(idx[:k]); err != nil {
			t.Fatal(err)
		}
		idx = idx[k:]
	}
	want := fmt.Sprintf(`out  0 "ok\n" @%d`, len(long)+len(tail))
	if strings.Join(p.got, "\n") != want {
		t.Errorf("got %q, want %q", p.got, want)
	}
}
