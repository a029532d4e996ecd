package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/monkeyci/monkeyci/events"
)

// The standalone sidecar's stream: one JSON object per line,
//
//	{"event":{...},"offset":57}
//	{"log":{"command":"0","stream":"out","offset":123,"data":"<base64>"}}
//
// Offsets are byte offsets in events.edn and in each log file, so a receiver
// can drop what a restarted sidecar sends again. Events that are not a line
// of events.edn (a file refused as a symlink, say) carry no offset.
type streamLine struct {
	Event  *events.Event `json:"event,omitempty"`
	Offset *int64        `json:"offset,omitempty"`
	Log    *Chunk        `json:"log,omitempty"`
}

// Chunk is a piece of a command's output at Offset in its log file.
type Chunk struct {
	Command string `json:"command"`
	Stream  string `json:"stream"`
	Offset  int64  `json:"offset"`
	Data    []byte `json:"data"`
}

type jsonSink struct{ enc *json.Encoder }

func (s jsonSink) event(e events.Event, off int64) error {
	l := streamLine{Event: &e}
	if off >= 0 {
		l.Offset = &off
	}
	return s.enc.Encode(l) // one Write per line
}

func (s jsonSink) output(c, st string, off int64, d []byte) error {
	return s.enc.Encode(streamLine{Log: &Chunk{Command: c, Stream: st, Offset: off, Data: d}})
}

// Stream tails dir like Tail and writes what it reads to w as JSON lines. It
// returns after draining every file, when stop is closed (on SIGTERM) or
// once a done? event has been read; or with ctx's error, or w's.
func Stream(ctx context.Context, dir string, w io.Writer, stop <-chan struct{}) error {
	t, err := newTailer(dir, jsonSink{json.NewEncoder(w)})
	if err != nil {
		return err
	}
	defer t.close()
	return t.run(ctx, stop, true)
}

// ReadStream passes a Stream's lines to sink, dropping repeated bytes and
// events, until r ends.
func ReadStream(r io.Reader, sink Sink) error {
	return (&Receiver{Sink: sink}).Read(r)
}

// Receiver reads the streams of one job directory, one after another (a
// sidecar that restarts sends everything again from offset 0), and passes
// each byte and event to Sink once.
type Receiver struct {
	Sink   Sink
	next   map[[2]string]int64 // per log file: the offset expected next
	nextEv int64
}

// Read reads one stream until r ends. A gap in a log file's offsets is an
// error: bytes were lost on the way.
func (rc *Receiver) Read(r io.Reader) error {
	if rc.next == nil {
		rc.next = map[[2]string]int64{}
	}
	dec := json.NewDecoder(r)
	for {
		var l streamLine
		if err := dec.Decode(&l); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("sidecar stream: %w", err)
		}
		switch {
		case l.Log != nil:
			c := l.Log
			k := [2]string{c.Command, c.Stream}
			exp := rc.next[k]
			if c.Offset > exp {
				return fmt.Errorf("sidecar stream: %s_%s.log: bytes %d to %d missing", c.Command, c.Stream, exp, c.Offset)
			}
			if skip := exp - c.Offset; skip < int64(len(c.Data)) {
				d := c.Data[skip:]
				rc.next[k] = exp + int64(len(d))
				rc.Sink.Output(c.Command, c.Stream, d)
			}
		case l.Event != nil:
			if l.Offset != nil {
				if *l.Offset < rc.nextEv {
					continue
				}
				rc.nextEv = *l.Offset + 1
			}
			rc.Sink.Event(*l.Event)
		}
	}
}
