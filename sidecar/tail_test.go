package sidecar

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/events"
)

const manyLines = 10000

// A line that prints manyLines lines, one write each, and the job exits at
// once: the tailer must deliver all of them, and in order.
var burst = []string{
	`i=0; while [ $i -lt ` + fmt.Sprint(manyLines) + ` ]; do echo "line $i"; i=$((i+1)); done`,
	`echo last >&2`,
}

func wantBurst() string {
	var b strings.Builder
	for i := range manyLines {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

func checkBurst(t *testing.T, recs []record) {
	t.Helper()
	if got := output(recs, "0", "out"); got != wantBurst() {
		t.Fatalf("command 0 out: %d bytes, want %d", len(got), len(wantBurst()))
	}
	if got := output(recs, "1", "err"); got != "last\n" {
		t.Fatalf("command 1 err: %q", got)
	}
	want := "container/start, command/start 0, command/end 0, command/start 1, command/end 1, container/script-end"
	if got := types(evs(recs)); got != want {
		t.Fatalf("events: %s", got)
	}
	checkOrder(t, recs)
}

func TestTailLosesNothingOnFastExit(t *testing.T) {
	for name, sh := range shells(t) {
		t.Run(name, func(t *testing.T) {
			for range 3 {
				dir := t.TempDir()
				if err := Write(dir, burst); err != nil {
					t.Fatal(err)
				}
				rec := newRecorder()
				finish := tailDone(t, dir, rec)
				cmd := wrapperCmd(t, sh, dir, t.TempDir(), len(burst), "")
				start := time.Now()
				if err := cmd.Run(); err != nil {
					t.Fatal(err)
				}
				ran := time.Since(start)
				if err := finish(); err != nil {
					t.Fatal(err)
				}
				t.Logf("job %v, drained %v after exit, %d sink calls", ran, time.Since(start)-ran, len(rec.snapshot()))
				checkBurst(t, rec.snapshot())
			}
		})
	}
}

// A tailer started after the job has ended gets no notification at all, and
// still reads everything.
func TestTailAfterExit(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, burst); err != nil {
		t.Fatal(err)
	}
	if err := wrapperCmd(t, "/bin/sh", dir, t.TempDir(), len(burst), "").Run(); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	exited := make(chan struct{})
	close(exited)
	if err := Tail(context.Background(), dir, rec, exited); err != nil {
		t.Fatal(err)
	}
	checkBurst(t, rec.snapshot())
}

// heldJob is a job run by the wrapper and tailed live, whose lines may
// wait on a fifo ("read x < " + hold) until release.
type heldJob struct {
	hold   string
	rec    *recorder
	tl     *tailer
	cmd    *exec.Cmd
	exited chan struct{}
	res    chan error
}

// startHeld writes the job's lines, starts its tailer and then the job.
// lines is given the fifo's path.
func startHeld(t *testing.T, lines func(hold string) []string) *heldJob {
	t.Helper()
	dir, hold := t.TempDir(), filepath.Join(t.TempDir(), "go")
	if err := syscall.Mkfifo(hold, 0o600); err != nil {
		t.Fatal(err)
	}
	ls := lines(hold)
	if err := Write(dir, ls); err != nil {
		t.Fatal(err)
	}
	j := &heldJob{hold: hold, rec: newRecorder(), exited: make(chan struct{}), res: make(chan error, 1)}
	var err error
	if j.tl, err = newTailer(dir, plain{j.rec}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.tl.close)
	go func() { j.res <- j.tl.run(context.Background(), j.exited, false) }()
	j.cmd = wrapperCmd(t, "/bin/sh", dir, t.TempDir(), len(ls), "")
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return j
}

// release lets the job go on past the fifo, waits for it and for the
// tailer's end, and returns what the tailer passed on.
func (j *heldJob) release(t *testing.T) []record {
	t.Helper()
	if err := os.WriteFile(j.hold, []byte("\n"), 0); err != nil {
		t.Fatal(err)
	}
	if err := j.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	close(j.exited)
	if err := <-j.res; err != nil {
		t.Fatal(err)
	}
	recs := j.rec.snapshot()
	checkOrder(t, recs)
	return recs
}

// A job that prints fast is read every readGap, not at every write: while
// it prints, the reads of its file are bounded by the time it takes (the
// loop makes manyLines writes, each a notification).
func TestTailReadsAFastWriterEveryReadGap(t *testing.T) {
	start := time.Now()
	j := startHeld(t, func(hold string) []string { return []string{burst[0] + "; read x < " + hold} })
	// All of it read live: the job still waits on the fifo.
	j.rec.waitFor(t, "every line", func(r []record) bool { return output(r, "0", "out") == wantBurst() })
	took, reads := time.Since(start), j.tl.reads.Load()
	// One read of the log file per readGap at most, and a few more: the
	// event file's, and the first read of the log file, at once. Twice
	// that is allowed: a busy machine's timers fire late and early by
	// turns (it once read 37 times where 36 were allowed); a read at
	// every write would still be hundreds over.
	if bound := 2*int64(took/readGap) + 10; reads > bound {
		t.Errorf("%d reads for %d writes in %v, want at most %d (about one per %v)", reads, manyLines, took, bound, readGap)
	}
	t.Logf("%d writes read in %d reads over %v", manyLines, reads, took)
	j.release(t)
}

// While a job runs, output and events arrive as they are written, and the
// tailer sleeps in between: no reads at all while nothing is written.
func TestTailLiveAndIdle(t *testing.T) {
	j := startHeld(t, func(hold string) []string {
		return []string{"echo before; read x < " + hold + "; echo after", "echo two"}
	})
	j.rec.waitFor(t, "the first output", func(r []record) bool { return output(r, "0", "out") == "before\n" })
	if got := types(evs(j.rec.snapshot())); got != "container/start, command/start 0" {
		t.Fatalf("events so far: %s", got)
	}

	// The job is blocked on the fifo: watch the tailer for a while.
	reads := j.tl.reads.Load()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	time.Sleep(300 * time.Millisecond) // an observation window, not a wait for a result
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	if n := j.tl.reads.Load() - reads; n != 0 {
		t.Errorf("%d reads while the job wrote nothing", n)
	}
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	t.Logf("idle 300ms: %d reads, %v CPU for the whole test process", j.tl.reads.Load()-reads, cpu)

	recs := j.release(t)
	if got := output(recs, "0", "out") + output(recs, "1", "out"); got != "before\nafter\ntwo\n" {
		t.Errorf("output: %q", got)
	}
	if got := types(evs(recs)); got != "container/start, command/start 0, command/end 0, command/start 1, command/end 1, container/script-end" {
		t.Errorf("events: %s", got)
	}
	// Read times come from the tailer and follow the file.
	es := evs(recs)
	for i := 1; i < len(es); i++ {
		if es[i].Time.Before(es[i-1].Time) || es[i].Time.IsZero() {
			t.Errorf("event times out of order: %v", es)
		}
	}
}

// Malformed, over-long and unfinished event lines never stop the tailer.
func TestTailMalformedAndPartial(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, nil); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	finish := tailDone(t, dir, rec)
	f, err := os.OpenFile(filepath.Join(dir, EventsFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	long := `{:type :job/start :message "` + strings.Repeat("x", maxLine+10) + `"}` + "\n"
	for _, s := range []string{
		"{:type :container/start}\n", "{:type\n", "\n", long, "not edn at all ]]]\n", "{:type :command/start :command \"0\"}\n",
		`{:type :container/script-end :result {:status :success :exit 0}}`, // no newline yet
	} {
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitFor(t, "the whole lines", func(r []record) bool { return len(evs(r)) == 5 })
	if got := types(evs(rec.snapshot())); got != "container/start, !, !, !, command/start 0" {
		t.Fatalf("events: %s", got)
	}
	if err := finish(); err != nil {
		t.Fatal(err)
	}
	es := evs(rec.snapshot())
	if len(es) != 6 || es[5].Type != events.ContainerScriptEnd || es[5].Status != events.Success {
		t.Fatalf("after exit: %s", types(es))
	}
	for _, e := range es[1:4] {
		if !strings.Contains(e.Message, EventsFile+" at offset") {
			t.Errorf("report: %q", e.Message)
		}
	}
	if !strings.Contains(es[2].Message, "longer than") {
		t.Errorf("long line report: %q", es[2].Message)
	}
}

// Files the job made into symlinks or fifos are not read (nor block).
func TestTailRefusesNonFiles(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, nil); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("host secret\n"), 0o600)
	logs := filepath.Join(dir, LogsDir)
	if err := os.Symlink(secret, filepath.Join(logs, "0_out.log")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(logs, "0_err.log"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(logs, "1_out.log"), []byte("fine\n"), 0o600)
	os.WriteFile(filepath.Join(dir, EventsFile), []byte(`{:type :command/start :command "0"}
{:type :command/end :command "0" :exit 0}
{:type :command/start :command "1"}
{:type :command/end :command "1" :exit 0}
`), 0o600)
	rec := newRecorder()
	exited := make(chan struct{})
	close(exited)
	if err := Tail(context.Background(), dir, rec, exited); err != nil {
		t.Fatal(err)
	}
	recs := rec.snapshot()
	if output(recs, "0", "out") != "" || output(recs, "1", "out") != "fine\n" {
		t.Fatalf("outputs: %+v", recs)
	}
	refused := 0
	for _, e := range evs(recs) {
		if strings.HasPrefix(e.Message, "not read") {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d refusals reported, want 2: %s", refused, types(evs(recs)))
	}
}

func TestTailContextAndMissingFiles(t *testing.T) {
	dir := t.TempDir() // not even written: no events.edn, no logs
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	rec := newRecorder()
	go func() { res <- Tail(ctx, dir, rec, nil) }()
	// The log dir appears later, with output of a started command.
	os.Mkdir(filepath.Join(dir, LogsDir), 0o777)
	os.WriteFile(filepath.Join(dir, LogsDir, "0_out.log"), []byte("late\n"), 0o644)
	os.WriteFile(filepath.Join(dir, EventsFile), []byte("{:type :command/start :command \"0\"}\n"), 0o644)
	rec.waitFor(t, "output from a late log dir", func(r []record) bool { return output(r, "0", "out") == "late\n" })
	cancel()
	if err := <-res; err != context.Canceled {
		t.Fatalf("Tail: %v", err)
	}
	if err := Tail(context.Background(), filepath.Join(dir, "nope"), rec, nil); err == nil {
		t.Error("Tail of a missing dir: no error")
	}
}

// Output held back by readGap was written before what is noticed after
// it: a write to stderr reads the stdout held back first, so the two keep
// the order they were written in. (The gap is made an hour long: without
// that, the held stdout would come only at the job's end.)
func TestTailKeepsTheOrderOfStdoutAndStderr(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, []string{"x"}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	tl, err := newTailer(dir, plain{rec})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tl.close)
	tl.readGap = time.Hour
	exited, res := make(chan struct{}), make(chan error, 1)
	go func() { res <- tl.run(context.Background(), exited, false) }()
	appendTo := func(name, data string) {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(data); err != nil {
			t.Fatal(err)
		}
	}
	out, errs := filepath.Join(LogsDir, LogFile("0", "out")), filepath.Join(LogsDir, LogFile("0", "err"))
	appendTo(EventsFile, `{:type :command/start :command "0"}`+"\n")
	appendTo(out, "out1\n")
	rec.waitFor(t, "out1", func(r []record) bool { return output(r, "0", "out") == "out1\n" })
	// out1 may have been read by the tailer's first scan, which reads the
	// files one after the other: what is written below must come after it
	// and be told by notifications alone. An event written now is read once
	// that scan is over.
	appendTo(EventsFile, `{:type :command/start :command "1"}`+"\n")
	rec.waitFor(t, "the second command's start", func(r []record) bool {
		return slices.ContainsFunc(r, func(r record) bool { return r.ev != nil && r.ev.Command == "1" })
	})
	appendTo(out, "out2\n") // within the gap: held back
	appendTo(errs, "err1\n")
	rec.waitFor(t, "err1", func(r []record) bool { return output(r, "0", "err") == "err1\n" })
	var order []string
	for _, r := range rec.snapshot() {
		if r.ev == nil {
			order = append(order, strings.TrimSpace(r.data))
		}
	}
	if got := strings.Join(order, " "); got != "out1 out2 err1" {
		t.Errorf("read %q, want out1 out2 err1", got)
	}
	close(exited)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}
