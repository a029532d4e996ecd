package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// Stream ends by itself after the done? event, and ReadStream gives back what
// Tail would have: all of it, in order.
func TestStreamRoundTrip(t *testing.T) {
	for name, sh := range shells(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Write(dir, burst); err != nil {
				t.Fatal(err)
			}
			pr, pw := io.Pipe()
			res := make(chan error, 1)
			go func() {
				err := Stream(context.Background(), dir, pw, nil) // never told to stop
				pw.CloseWithError(err)
				res <- err
			}()
			var raw bytes.Buffer
			rec := newRecorder()
			read := make(chan error, 1)
			go func() { read <- ReadStream(io.TeeReader(pr, &raw), rec) }()
			if err := wrapperCmd(t, sh, dir, t.TempDir(), len(burst), "").Run(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-res:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(patience):
				t.Fatal("Stream did not end after done?")
			}
			if err := <-read; err != nil {
				t.Fatal(err)
			}
			checkBurst(t, rec.snapshot())

			// Every line is one JSON object of the documented shape.
			for _, l := range strings.Split(strings.TrimSuffix(raw.String(), "\n"), "\n") {
				var m map[string]json.RawMessage
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("%q: %v", l, err)
				}
				if _, ok := m["log"]; ok != (m["event"] == nil) {
					t.Fatalf("line with neither or both: %s", l)
				}
			}

			// A sidecar that restarts sends it all again: the receiver drops it.
			rec2 := newRecorder()
			rc := &Receiver{Sink: rec2}
			for range 2 {
				if err := rc.Read(bytes.NewReader(raw.Bytes())); err != nil {
					t.Fatal(err)
				}
			}
			checkBurst(t, rec2.snapshot())
		})
	}
}

func TestStreamStop(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, nil); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	stop := make(chan struct{})
	close(stop) // SIGTERM before anything happened: drain (nothing) and end
	if err := Stream(context.Background(), dir, &out, stop); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %q", out.String())
	}
}

func TestReadStreamOffsets(t *testing.T) {
	in := `{"event":{"type":"container/start"},"offset":0}
{"event":{"type":"command/start","command":"0"},"offset":25}
{"log":{"command":"0","stream":"out","offset":0,"data":"YWJj"}}
{"log":{"command":"0","stream":"out","offset":1,"data":"YmNkZQ=="}}
{"event":{"type":"command/start","command":"0"},"offset":25}
{"event":{"message":"not read: x"}}
{"event":{"message":"not read: x"}}
{"future":{"a":1}}
`
	rec := newRecorder()
	if err := ReadStream(strings.NewReader(in), rec); err != nil {
		t.Fatal(err)
	}
	recs := rec.snapshot()
	if got := output(recs, "0", "out"); got != "abcde" {
		t.Errorf("output %q", got)
	}
	if got := types(evs(recs)); got != "container/start, command/start 0, !, !" {
		t.Errorf("events %s", got)
	}
	gap := `{"log":{"command":"0","stream":"out","offset":0,"data":"YWJj"}}
{"log":{"command":"0","stream":"out","offset":5,"data":"YWJj"}}
`
	if err := ReadStream(strings.NewReader(gap), newRecorder()); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("gap: %v", err)
	}
	if err := ReadStream(strings.NewReader("{oops\n"), newRecorder()); err == nil {
		t.Error("garbage: no error")
	}
}

var _ Sink = (*recorder)(nil)
