package sidecar

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/events"
)

// Generous: the machine is shared. Waits end as soon as their condition holds.
const patience = 60 * time.Second

// shells are the /bin/sh flavours the wrapper must work with.
func shells(t *testing.T) map[string]string {
	s := map[string]string{"dash": "/bin/sh"}
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			s["busybox"] = p
			break
		}
	}
	if len(s) < 2 {
		t.Log("no busybox here: testing /bin/sh only")
	}
	return s
}

// wrapperCmd makes an exec.Cmd running dir's wrapper as a container would,
// with workDir as its cwd. For busybox, "sh" on PATH is busybox too, so the
// lines run under it as well.
func wrapperCmd(t *testing.T, sh, dir, workDir string, lines int, shell string) *exec.Cmd {
	argv, env := Command(dir, lines, shell)
	pathEnv := os.Getenv("PATH")
	if strings.HasSuffix(sh, "busybox") {
		bin := t.TempDir()
		if err := os.Symlink(sh, filepath.Join(bin, "sh")); err != nil {
			t.Fatal(err)
		}
		pathEnv = bin + ":" + pathEnv
		argv = append([]string{sh, "sh"}, argv[1:]...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = workDir
	cmd.Env = append([]string{"PATH=" + pathEnv, "HOME=" + workDir}, env...)
	return cmd
}

// record is one sink call.
type record struct {
	ev     *events.Event
	cmd    string
	stream string
	data   string
}

// recorder is a Sink that keeps every call and lets a test wait for a state.
type recorder struct {
	mu      sync.Mutex
	recs    []record
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{}, 1)} }

func (r *recorder) add(rec record) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) Event(e events.Event) { r.add(record{ev: &e}) }
func (r *recorder) Output(c, s string, d []byte) {
	r.add(record{cmd: c, stream: s, data: string(d)})
}

func (r *recorder) snapshot() []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]record(nil), r.recs...)
}

// waitFor waits until cond holds for the records, or fails the test.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]record) bool) {
	t.Helper()
	timeout := time.After(patience)
	for !cond(r.snapshot()) {
		select {
		case <-r.changed:
		case <-timeout:
			t.Fatalf("timed out waiting for %s; have %s", what, summary(r.snapshot()))
		}
	}
}

func output(recs []record, cmd, stream string) string {
	var b strings.Builder
	for _, r := range recs {
		if r.ev == nil && r.cmd == cmd && r.stream == stream {
			b.WriteString(r.data)
		}
	}
	return b.String()
}

func evs(recs []record) []events.Event {
	var es []events.Event
	for _, r := range recs {
		if r.ev != nil {
			es = append(es, *r.ev)
		}
	}
	return es
}

// types lists event types; malformed reports show as "!".
func types(es []events.Event) string {
	var s []string
	for _, e := range es {
		switch {
		case e.Type == "":
			s = append(s, "!")
		case e.Command != "":
			s = append(s, string(e.Type)+" "+e.Command)
		default:
			s = append(s, string(e.Type))
		}
	}
	return strings.Join(s, ", ")
}

func summary(recs []record) string {
	n := 0
	for _, r := range recs {
		if r.ev == nil {
			n++
		}
	}
	return types(evs(recs)) + " and " + strconv.Itoa(n) + " output chunks"
}

// checkOrder asserts each command's output sits between its start and end.
func checkOrder(t *testing.T, recs []record) {
	t.Helper()
	start, end := map[string]int{}, map[string]int{}
	for i, r := range recs {
		if r.ev == nil {
			continue
		}
		switch r.ev.Type {
		case events.CommandStart:
			start[r.ev.Command] = i
		case events.CommandEnd:
			end[r.ev.Command] = i
		}
	}
	for i, r := range recs {
		if r.ev != nil {
			continue
		}
		s, ok1 := start[r.cmd]
		e, ok2 := end[r.cmd]
		if !ok1 || !ok2 || i < s || i > e {
			t.Fatalf("output of command %s at %d, outside its start %d and end %d", r.cmd, i, s, e)
		}
	}
}

// tailDone runs Tail in the background; the returned func closes exited
// and waits for Tail's result.
func tailDone(t *testing.T, dir string, sink Sink) (finish func() error) {
	exited := make(chan struct{})
	res := make(chan error, 1)
	go func() { res <- Tail(context.Background(), dir, sink, exited) }()
	return func() error {
		close(exited)
		select {
		case err := <-res:
			return err
		case <-time.After(patience):
			t.Fatal("Tail did not return after exit")
			return nil
		}
	}
}
