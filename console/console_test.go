package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/events"
)

// t0 is the fixed clock every test printer reads.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestPrinter(mode Mode) (*Printer, *bytes.Buffer) {
	var buf bytes.Buffer
	p := NewPrinter(&buf, mode)
	p.now = func() time.Time { return t0 }
	return p, &buf
}

// call is one thing done to a printer.
type call func(p *Printer)

func ev(e events.Event) call { return func(p *Printer) { p.Event(e) } }

func out(job, stream, data string) call {
	return func(p *Printer) { p.Output(job, stream, []byte(data)) }
}

func flush(p *Printer) { p.Flush() }

func TestPrinterPlain(t *testing.T) {
	tests := []struct {
		name  string
		calls []call
		want  string
	}{
		{
			name: "job state lines",
			calls: []call{
				ev(events.Event{Type: events.JobQueued, Job: "compile"}),
				ev(events.Event{Type: events.JobInitializing, Job: "compile"}),
				ev(events.Event{Type: events.JobStart, Job: "compile", Time: t0}),
				ev(events.Event{Type: events.JobEnd, Job: "compile", Status: events.Success, Duration: 1500 * time.Millisecond}),
			},
			want: "" +
				"compile  waiting for capacity\n" +
				"compile  creating\n" +
				"compile  running\n" +
				"compile  success in 1.5s\n",
		},
		{
			name: "a job's caches: scope and where they came from",
			calls: []call{
				ev(events.Event{Type: events.JobStart, Job: "test", Time: t0, Caches: []events.Cache{
					{ID: "deps", Scope: "branch:feature", From: "branch:main"}, {ID: "m2", Scope: "branch:feature"}}}),
			},
			want: "test    running; caches: deps branch:feature (restored from branch:main), m2 branch:feature (none yet)\n",
		},
		{
			name: "a job queued behind its dependencies waits for them",
			calls: []call{
				ev(events.Event{Type: events.JobQueued, Job: "build"}),
				ev(events.Event{Type: events.JobQueued, Job: "deploy", Deps: []string{"build", "lint"}}),
				ev(events.Event{Type: events.JobEnd, Job: "build", Status: events.Success, Duration: time.Second}),
				ev(events.Event{Type: events.JobQueued, Job: "notify", Deps: []string{"build"}}),
			},
			want: "" +
				"build   waiting for capacity\n" +
				"deploy  waiting for build, lint\n" +
				"build   success in 1s\n" +
				"notify  waiting for capacity\n",
		},
		{
			name: "a service's dependents wait for it to be ready, not to end",
			calls: []call{
				ev(events.Event{Type: events.JobQueued, Job: "db", Expose: []int{5432}}),
				ev(events.Event{Type: events.JobQueued, Job: "it", Deps: []string{"db"}}),
				ev(events.Event{Type: events.JobReady, Job: "db", Expose: []int{5432}}),
			},
			want: "" +
				"db      waiting for capacity\n" +
				"it      waiting for db\n" +
				"db      serving on port 5432\n",
		},
		{
			name: "an action runs at once and says so",
			calls: []call{
				ev(events.Event{Type: events.JobQueued, Job: "pack", Action: true}),
				ev(events.Event{Type: events.JobStart, Job: "pack", Time: t0}),
				ev(events.Event{Type: events.JobEnd, Job: "pack", Status: events.Success, Duration: time.Second}),
			},
			want: "" +
				"pack    action, running\n" +
				"pack    action, success in 1s\n",
		},
		{
			name: "failure and skip carry their message",
			calls: []call{
				ev(events.Event{Type: events.JobEnd, Job: "test", Status: events.Failure, Duration: 250 * time.Millisecond, Message: "line 2 exited with 1"}),
				ev(events.Event{Type: events.JobSkipped, Job: "deploy", Status: events.Skipped, Message: "dependency test failed"}),
			},
			want: "" +
				"test    failure in 250ms: line 2 exited with 1\n" +
				"deploy  skipped: dependency test failed\n",
		},
		{
			name: "events that are not shown",
			calls: []call{
				ev(events.Event{Type: events.JobPending, Job: "a"}),
				ev(events.Event{Type: events.CommandStart, Job: "a"}),
				ev(events.Event{Type: events.ScriptStart}),
				ev(events.Event{Type: events.BuildStart}),
			},
			want: "",
		},
		{
			name: "script pause and resume",
			calls: []call{
				ev(events.Event{Type: events.ScriptPaused, Duration: 3 * time.Millisecond}),
				ev(events.Event{Type: events.ScriptResumed, Duration: 2340 * time.Millisecond}),
			},
			want: "" +
				"script paused while its jobs run\n" +
				"script resumed after 2.3s\n",
		},
		{
			name: "output is prefixed with the job id and aligned",
			calls: []call{
				ev(events.Event{Type: events.JobInitializing, Job: "a"}),
				ev(events.Event{Type: events.JobInitializing, Job: "integration"}),
				out("a", "out", "one\ntwo\n"),
				out("integration", "err", "three\n"),
				out("", "out", "four\n"),
			},
			want: "" +
				"a       creating\n" +
				"integration  creating\n" +
				"a           | one\n" +
				"a           | two\n" +
				"integration | three\n" +
				"script      | four\n",
		},
		{
			name: "the script's output is prefixed script",
			calls: []call{
				out("", "err", "hello from the script\n"),
			},
			want: "script | hello from the script\n",
		},
		{
			name: "output in pieces keeps lines whole",
			calls: []call{
				out("a", "out", "hel"),
				out("a", "out", "lo"),
				out("b", "out", "b's li"),
				out("a", "out", " world\nsec"),
				out("b", "out", "ne\n"),
				out("a", "out", "ond\n"),
			},
			want: "" +
				"a      | hello world\n" +
				"b      | b's line\n" +
				"a      | second\n",
		},
		{
			name: "streams of one job are kept apart",
			calls: []call{
				out("a", "out", "stdout "),
				out("a", "err", "stderr\n"),
				out("a", "out", "line\n"),
			},
			want: "" +
				"a      | stderr\n" +
				"a      | stdout line\n",
		},
		{
			name: "empty lines and an empty piece",
			calls: []call{
				out("a", "out", ""),
				out("a", "out", "\n\nx\n"),
			},
			want: "" +
				"a      | \n" +
				"a      | \n" +
				"a      | x\n",
		},
		{
			name: "flush writes a trailing partial line",
			calls: []call{
				out("a", "out", "done\nno newline"),
				out("", "out", "script tail"),
				flush,
				flush, // nothing left the second time
			},
			want: "" +
				"a      | done\n" +
				"a      | no newline\n" +
				"script | script tail\n",
		},
		{
			name: "output after a flush starts a new line",
			calls: []call{
				out("a", "out", "first"),
				flush,
				out("a", "out", "second\n"),
			},
			want: "" +
				"a      | first\n" +
				"a      | second\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, buf := newTestPrinter(Plain)
			for _, c := range tt.calls {
				c(p)
			}
			if got := buf.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// TestPrinterOutputDoesNotKeepCallersBuffer: a reporter's caller may reuse
// its buffer once Output returns (io.Writer's contract).
func TestPrinterOutputDoesNotKeepCallersBuffer(t *testing.T) {
	p, buf := newTestPrinter(Plain)
	data := []byte("abc")
	p.Output("a", "out", data)
	copy(data, "XYZ")
	p.Output("a", "out", []byte("\n"))
	if got, want := buf.String(), "a      | abc\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestPrinterConcurrentOutputKeepsLinesWhole(t *testing.T) {
	p, buf := newTestPrinter(Plain)
	const jobs, lines = 8, 200
	var wg sync.WaitGroup
	for j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := fmt.Sprintf("job%d", j)
			for i := range lines {
				// Each line in two pieces.
				p.Output(job, "out", []byte(fmt.Sprintf("%s line", job)))
				p.Output(job, "out", []byte(fmt.Sprintf(" %d\n", i)))
			}
		}()
	}
	wg.Wait()
	p.Flush()
	got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(got) != jobs*lines {
		t.Fatalf("%d lines, want %d", len(got), jobs*lines)
	}
	next := map[string]int{}
	for _, l := range got {
		var prefix, job string
		var i int
		if _, err := fmt.Sscanf(l, "%s | %s line %d", &prefix, &job, &i); err != nil || prefix != job {
			t.Fatalf("torn line %q (%v)", l, err)
		}
		if i != next[job] {
			t.Fatalf("%s: line %d, want %d", job, i, next[job])
		}
		next[job]++
	}
}

func TestPrinterJSON(t *testing.T) {
	p, buf := newTestPrinter(JSON)
	p.Event(events.Event{Type: events.JobStart, Job: "compile", Build: "b1", Time: t0})
	p.Event(events.Event{Type: events.JobEnd, Job: "compile", Status: events.Failure, Exit: events.ExitCode(2), Duration: time.Second, Message: "boom"})
	p.Event(events.Event{Type: events.ScriptPaused})
	p.Output("compile", "out", []byte("partial"))
	p.Output("", "err", []byte("a \"quoted\" line\n"))
	p.Flush() // nothing is held back in JSON mode
	p.Summary(agent.Outcome{Result: events.Failure, Duration: 4 * time.Second, Paused: time.Second, Pauses: 1,
		Jobs: []agent.JobOutcome{{ID: "compile", Result: events.Failure, Exit: 2, Duration: time.Second}}})

	lines := strings.Split(buf.String(), "\n")
	if last := lines[len(lines)-1]; last != "" {
		t.Fatalf("output does not end with a newline: %q", last)
	}
	lines = lines[:len(lines)-1]
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 6:\n%s", len(lines), buf.String())
	}
	for i, l := range lines {
		if !json.Valid([]byte(l)) {
			t.Errorf("line %d is not valid JSON: %s", i+1, l)
		}
	}

	var start events.Event
	if err := json.Unmarshal([]byte(lines[0]), &start); err != nil {
		t.Fatal(err)
	}
	if start.Type != events.JobStart || start.Job != "compile" || start.Build != "b1" || !start.Time.Equal(t0) {
		t.Errorf("event round trip: %+v", start)
	}
	var end events.Event
	if err := json.Unmarshal([]byte(lines[1]), &end); err != nil {
		t.Fatal(err)
	}
	if end.Status != events.Failure || end.Exit == nil || *end.Exit != 2 || end.Duration != time.Second || end.Message != "boom" {
		t.Errorf("event round trip: %+v", end)
	}
	if want := `{"type":"script/paused"}`; lines[2] != want {
		t.Errorf("paused: got %s, want %s", lines[2], want)
	}

	outputs := []map[string]string{
		{"type": "output", "job": "compile", "stream": "out", "data": "partial"},
		{"type": "output", "job": "script", "stream": "err", "data": "a \"quoted\" line\n"},
	}
	for i, want := range outputs {
		var got map[string]string
		if err := json.Unmarshal([]byte(lines[3+i]), &got); err != nil {
			t.Fatalf("output line: %v: %s", err, lines[3+i])
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("output line: got %v, want %v", got, want)
		}
	}

	var sum struct {
		Type     string
		Result   events.Result
		Duration time.Duration
		Paused   time.Duration
		Pauses   int
		Jobs     []agent.JobOutcome
	}
	if err := json.Unmarshal([]byte(lines[5]), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Type != "summary" || sum.Result != events.Failure || sum.Duration != 4*time.Second || sum.Paused != time.Second ||
		sum.Pauses != 1 || len(sum.Jobs) != 1 || sum.Jobs[0].ID != "compile" || sum.Jobs[0].Exit != 2 {
		t.Errorf("summary: %+v", sum)
	}
}

func TestPrinterSummary(t *testing.T) {
	tests := []struct {
		name string
		out  agent.Outcome
		want string
	}{
		{
			name: "each job's result and the paused share",
			out: agent.Outcome{
				Result: events.Failure, Duration: 10 * time.Second, Paused: 2500 * time.Millisecond, Pauses: 3,
				Jobs: []agent.JobOutcome{
					{ID: "compile", Result: events.Success, Duration: 1500 * time.Millisecond},
					{ID: "test", Result: events.Failure, Exit: 1, Duration: 300 * time.Millisecond, Message: "line 1 exited with 1"},
					{ID: "deploy", Result: events.Skipped, Message: "dependency test failed"},
					{ID: "lint", Result: events.Error, Message: "image not found"},
				},
			},
			want: "\n" +
				"✔ compile  success in 1.5s\n" +
				"✘ test     failure in 300ms: line 1 exited with 1\n" +
				"- deploy   skipped: dependency test failed\n" +
				"✘ lint     error: image not found\n" +
				"build failure in 10s; script paused 2.5s (25% of the build, 3 pauses)\n",
		},
		{
			name: "no duration divides by nothing",
			out:  agent.Outcome{Result: events.Success},
			want: "\nbuild success in 0s; the script was not paused\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, buf := newTestPrinter(Plain)
			for _, j := range tt.out.Jobs { // as a build does: every job has events first
				p.Event(events.Event{Type: events.JobPending, Job: j.ID})
			}
			p.Summary(tt.out)
			if got := buf.String(); got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestPrinterSummaryFlushesFirst(t *testing.T) {
	p, buf := newTestPrinter(Plain)
	p.Output("", "out", []byte("last words"))
	p.Summary(agent.Outcome{Result: events.Success, Duration: time.Second})
	want := "script | last words\n\nbuild success in 1s; the script was not paused\n"
	if got := buf.String(); got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
}

// up is the escape sequence that erases an n-line live block.
func up(n int) string { return fmt.Sprintf("\x1b[%dA\x1b[J", n) }

// row is one line of the live block.
func row(s string) string { return s + "\x1b[K\n" }

func TestPrinterLive(t *testing.T) {
	p, buf := newTestPrinter(Live)
	step := func(what string, c call, want string) {
		t.Helper()
		buf.Reset()
		c(p)
		if got := buf.String(); got != want {
			t.Errorf("%s:\ngot  %q\nwant %q", what, got, want)
		}
	}
	step("first state draws the block", ev(events.Event{Type: events.JobQueued, Job: "compile"}),
		row(" • compile  waiting for capacity"))
	step("a second job redraws it", ev(events.Event{Type: events.JobQueued, Job: "test"}),
		up(1)+
			row(" • compile  waiting for capacity")+
			row(" • test     waiting for capacity"))
	step("running shows the time so far", ev(events.Event{Type: events.JobStart, Job: "compile", Time: t0.Add(-2 * time.Second)}),
		up(2)+
			row(" • compile  running 2s")+
			row(" • test     waiting for capacity"))
	step("output goes above the block", out("compile", "out", "built\n"),
		up(2)+
			"compile | built\n"+
			row(" • compile  running 2s")+
			row(" • test     waiting for capacity"))
	step("a partial line changes nothing on screen", out("compile", "out", "half"), "")
	step("a paused script gets a row of its own", ev(events.Event{Type: events.ScriptPaused, Time: t0.Add(-time.Second)}),
		up(2)+
			row(" ⏸ script   paused 1s, its CPU lent to jobs")+
			row(" • compile  running 2s")+
			row(" • test     waiting for capacity"))
	step("tick redraws", (*Printer).Tick,
		up(3)+
			row(" ⏸ script   paused 1s, its CPU lent to jobs")+
			row(" • compile  running 2s")+
			row(" • test     waiting for capacity"))
	step("a resumed script loses its row", ev(events.Event{Type: events.ScriptResumed, Time: t0, Duration: time.Second}),
		up(3)+
			row(" • compile  running 2s")+
			row(" • test     waiting for capacity"))
	p.SetColumns(20)
	step("rows are cut to the terminal's width", ev(events.Event{Type: events.JobEnd, Job: "compile", Status: events.Success, Duration: 3 * time.Second}),
		up(2)+
			row(" ✔ compile  success…")+
			row(" • test     waiting…"))
	p.SetColumns(0)
	step("summary flushes, then erases the block for good", func(p *Printer) {
		p.Summary(agent.Outcome{Result: events.Success, Duration: 4 * time.Second, Paused: time.Second, Pauses: 1,
			Jobs: []agent.JobOutcome{{ID: "compile", Result: events.Success, Duration: 3 * time.Second}}})
	},
		up(2)+
			"compile | half\n"+
			row(" ✔ compile  success in 3s")+
			row(" • test     waiting for capacity")+
			up(2)+
			"\n"+
			"✔ compile  success in 3s\n"+
			"build success in 4s; script paused 1s (25% of the build, 1 pause)\n")
	step("after the summary the block is gone", out("", "out", "late\n"), "script  | late\n")
}

func TestPrinterTickIsSilentWhenNotLive(t *testing.T) {
	p, buf := newTestPrinter(Plain)
	p.Event(events.Event{Type: events.JobStart, Job: "a", Time: t0})
	buf.Reset()
	p.Tick()
	if buf.Len() != 0 {
		t.Errorf("tick wrote %q", buf.String())
	}
}
