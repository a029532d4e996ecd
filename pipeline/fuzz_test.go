package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/events"
	"olympos.io/encoding/edn"
)

func FuzzParseYAML(f *testing.F) { fuzzParse(f, "yaml") }
func FuzzParseJSON(f *testing.F) { fuzzParse(f, "json") }
func FuzzParseEDN(f *testing.F)  { fuzzParse(f, "edn") }

// fuzzParse checks that no input panics, that every error names a real
// place in the file on one line, and that valid plans drive a graph to the end.
func fuzzParse(f *testing.F, ext string) {
	for _, pattern := range []string{"testdata/*/*/.monkeyci/*." + ext, "testdata/*/.monkeyci/*." + ext, "testdata/golden/*." + ext} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	file := "fuzz/build." + ext
	f.Fuzz(func(t *testing.T, data []byte) {
		jobs, err := Parse(file, data)
		if err == nil {
			var p *Plan
			if p, err = Validate(jobs); err == nil {
				_ = p.Describe()
				drive(t, p)
			}
		}
		if err != nil {
			checkError(t, file, data, err)
		}
		// The readers must agree with the libraries they stand beside.
		switch ext {
		case "edn":
			// olympos misreads a comment right after a top-level literal
			// ("1;00" parses the comment), so inputs with ';' are left out.
			if _, err := parseEDN(file, data); err == nil && !bytes.ContainsRune(data, ';') {
				if serr := olymposSyntax(data); serr != nil {
					t.Fatalf("reader accepts what olympos rejects: %v", serr)
				}
			}
		case "json":
			if _, err := parseJSON(file, data); (err == nil) != json.Valid(bytes.TrimPrefix(data, utf8BOM)) {
				t.Fatalf("reader and encoding/json disagree: %v", err)
			}
		}
	})
}

func checkError(t *testing.T, file string, data []byte, err error) {
	var list []*Error
	var es Errors
	var e *Error
	switch {
	case errors.As(err, &es):
		list = es
	case errors.As(err, &e):
		list = []*Error{e}
	default:
		t.Fatalf("error %T is neither *Error nor Errors: %v", err, err)
	}
	lines := newPosTracker(file, data).at(len(data)).Line
	for _, e := range list {
		p := e.Pos
		if p.File != file || p.Line < 1 || p.Line > lines || p.Column < 1 {
			t.Fatalf("bad position %+v (file has %d lines) for %q", p, lines, e.Msg)
		}
		if e.Msg == "" || strings.ContainsAny(e.Msg, "\n\r") {
			t.Fatalf("message not on one line: %q", e.Msg)
		}
	}
}

// fuzzFacts are what fuzzed conditions are judged on.
var fuzzFacts = Facts{Branch: "feature/x", Tag: "v1.2", Changed: []string{"a/b/c.go", "README.md"}, ChangedKnown: true}

// drive runs a plan's graph to the end, failing every third job, after
// judging every job's conditions.
func drive(t *testing.T, p *Plan) {
	for _, j := range p.Jobs {
		if ok, reason := j.When.Holds(fuzzFacts); ok == (reason != "") {
			t.Fatalf("job %s: holds %v with reason %q", j.ID, ok, reason)
		}
	}
	g := p.Graph()
	for _, j := range p.Jobs {
		if j.Blocked {
			_ = g.Unblock(j.ID)
		}
	}
	n := 0
	for !g.Done() {
		ready := g.Ready()
		if len(ready) == 0 {
			t.Fatal("not done, yet nothing ready")
		}
		for _, id := range ready {
			if err := g.Start(id); err != nil {
				t.Fatal(err)
			}
			r := events.Success
			if n++; n%3 == 0 {
				r = events.Failure
			}
			if _, err := g.Finish(id, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	_ = g.Result()
	_ = g.Layers()
}

// olymposSyntax is olympos' verdict on the whole file: a syntax error, or nil.
func olymposSyntax(data []byte) (err error) {
	defer func() {
		if recover() != nil {
			err = nil
		}
	}()
	dec := edn.NewDecoder(bytes.NewReader(data))
	for {
		var v any
		if derr := dec.Decode(&v); derr != nil {
			var se *edn.SyntaxError
			if errors.As(derr, &se) {
				return se
			}
			return nil
		}
	}
}
