package sidecar

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/events"
)

// runWrapper writes lines into a new job dir and runs the wrapper to the end.
func runWrapper(t *testing.T, sh string, lines []string, shell string) (dir, work string, code int, es []events.Event) {
	t.Helper()
	dir, work = t.TempDir(), t.TempDir()
	if err := Write(dir, lines); err != nil {
		t.Fatal(err)
	}
	cmd := wrapperCmd(t, sh, dir, work, len(lines), shell)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		code = xe.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if stderr.Len() > 0 {
		t.Logf("wrapper stderr: %s", stderr.String())
	}
	return dir, work, code, readEvents(t, dir)
}

func readEvents(t *testing.T, dir string) []events.Event {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	var es []events.Event
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l == "" {
			continue
		}
		if !strings.HasSuffix(l, "\n") {
			t.Fatalf("event line without newline: %q", l)
		}
		e, err := events.DecodeEDN([]byte(l))
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		es = append(es, e)
	}
	return es
}

func logOf(t *testing.T, dir, cmd, stream string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, LogsDir, LogFile(cmd, stream)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteLayout(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, []string{"echo a", `echo "$x"`}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"lines/0": "echo a\n", "lines/1": "echo \"$x\"\n", EventsFile: ""} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, WrapperFile)); !bytes.Equal(b, wrapper) {
		t.Error("run.sh is not the embedded wrapper")
	}
	for name, mode := range map[string]os.FileMode{LogsDir: 0o777, EventsFile: 0o666} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %v", name, st.Mode().Perm(), err, mode)
		}
	}
	cmd, env := Command("/opt/monkeyci/job", 2, "")
	if strings.Join(cmd, " ") != "/bin/sh /opt/monkeyci/job/run.sh" ||
		strings.Join(env, " ") != "MONKEYCI_JOB_DIR=/opt/monkeyci/job MONKEYCI_LINES=2 MONKEYCI_SHELL=sh" {
		t.Errorf("Command: %q %q", cmd, env)
	}
}

func TestWrapperSuccess(t *testing.T) {
	for name, sh := range shells(t) {
		t.Run(name, func(t *testing.T) {
			dir, work, code, es := runWrapper(t, sh, []string{"echo hello", "echo oops >&2; cd /; pwd", "pwd"}, "")
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			want := "container/start, command/start 0, command/end 0, command/start 1, command/end 1, command/start 2, command/end 2, container/script-end"
			if got := types(es); got != want {
				t.Fatalf("events: %s", got)
			}
			s, e := es[1], es[2]
			if s.Stdout != dir+"/logs/0_out.log" || s.Stderr != dir+"/logs/0_err.log" || e.Stdout != s.Stdout || e.Exit == nil || *e.Exit != 0 {
				t.Errorf("command events: %+v %+v", s, e)
			}
			end := es[len(es)-1]
			if end.Status != events.Success || end.Exit == nil || *end.Exit != 0 || !end.Done || end.Step != "" {
				t.Errorf("script-end: %+v", end)
			}
			if got := logOf(t, dir, "0", "out"); got != "hello\n" {
				t.Errorf("0 out: %q", got)
			}
			if got := logOf(t, dir, "1", "err"); got != "oops\n" {
				t.Errorf("1 err: %q", got)
			}
			// Each line has its own shell, started in the work dir.
			if got := logOf(t, dir, "1", "out"); got != "/\n" {
				t.Errorf("1 out: %q", got)
			}
			if got := logOf(t, dir, "2", "out"); got != work+"\n" {
				t.Errorf("2 out: %q, want the work dir %s", got, work)
			}
		})
	}
}

func TestWrapperStopsAtFirstFailure(t *testing.T) {
	for name, sh := range shells(t) {
		t.Run(name, func(t *testing.T) {
			dir, work, code, es := runWrapper(t, sh, []string{"true", "echo partial; exit 3", "touch never"}, "")
			if code != 3 {
				t.Errorf("exit %d, want 3", code)
			}
			if got := types(es); got != "container/start, command/start 0, command/end 0, command/start 1, command/end 1, container/script-end" {
				t.Fatalf("events: %s", got)
			}
			if x := es[4].Exit; x == nil || *x != 3 {
				t.Errorf("command/end 1: %+v", es[4])
			}
			end := es[5]
			if end.Status != events.Error || end.Exit == nil || *end.Exit != 3 || end.Step != "1" || !end.Done {
				t.Errorf("script-end: %+v", end)
			}
			if _, err := os.Stat(filepath.Join(work, "never")); err == nil {
				t.Error("line 2 ran")
			}
			if got := logOf(t, dir, "1", "out"); got != "partial\n" {
				t.Errorf("1 out: %q", got)
			}
		})
	}
}

// The wrapper never reads a line as shell text: only the line's own shell does.
func TestWrapperRunsLinesVerbatim(t *testing.T) {
	nasty := []string{
		`printf '%s\n' '$(touch pwned1)' '` + "`touch pwned2`" + `' "a\"b" '%s %d %n' '\\' ';' '}' ':done? true'`,
		`echo "unclosed`, // a syntax error fails that line only
	}
	for name, sh := range shells(t) {
		t.Run(name, func(t *testing.T) {
			dir, work, code, es := runWrapper(t, sh, nasty, "")
			want := "$(touch pwned1)\n`touch pwned2`\na\"b\n%s %d %n\n\\\\\n;\n}\n:done? true\n"
			if got := logOf(t, dir, "0", "out"); got != want {
				t.Errorf("out: %q\nwant %q", got, want)
			}
			for _, f := range []string{"pwned1", "pwned2"} {
				if _, err := os.Stat(filepath.Join(work, f)); err == nil {
					t.Errorf("%s exists", f)
				}
			}
			end := es[len(es)-1]
			if code == 0 || end.Step != "1" || end.Status != events.Error || *end.Exit != code {
				t.Errorf("exit %d, end %+v", code, end)
			}
			if logOf(t, dir, "1", "err") == "" {
				t.Error("no syntax error message")
			}
		})
	}
}

func TestWrapperEdges(t *testing.T) {
	for name, sh := range shells(t) {
		t.Run(name, func(t *testing.T) {
			// No lines: the job succeeds.
			_, _, code, es := runWrapper(t, sh, nil, "")
			if code != 0 || types(es) != "container/start, container/script-end" || es[1].Status != events.Success {
				t.Errorf("no lines: exit %d, %s", code, types(es))
			}
			// A shell that is not there fails the first line with 127.
			_, _, code, es = runWrapper(t, sh, []string{"true"}, "/no/such/shell")
			if code != 127 || es[len(es)-1].Step != "0" || *es[len(es)-1].Exit != 127 {
				t.Errorf("missing shell: exit %d, %+v", code, es)
			}
			// A job dir that cannot go into an EDN string is refused.
			dir := filepath.Join(t.TempDir(), `a"b`)
			if err := Write(dir, []string{"true"}); err != nil {
				t.Fatal(err)
			}
			err := wrapperCmd(t, sh, dir, t.TempDir(), 1, "").Run()
			var xe *exec.ExitError
			if !errors.As(err, &xe) || xe.ExitCode() != 125 {
				t.Errorf("bad dir: %v", err)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, EventsFile)); len(b) != 0 {
				t.Errorf("bad dir: events written: %s", b)
			}
		})
	}
}
