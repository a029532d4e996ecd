package main

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/sidecar"
)

// TestSidecarStreamsAJobsFiles runs a real job wrapper on the host's sh and
// `monkeyci sidecar` beside it, and reads the stream back.
func TestSidecarStreamsAJobsFiles(t *testing.T) {
	dir := t.TempDir()
	if err := sidecar.Write(dir, []string{"echo first", "echo second >&2", "exit 4"}); err != nil {
		t.Fatal(err)
	}
	side := exec.Command(testbinary.Path(t), "sidecar", "--dir", dir)
	var stdout, stderr bytes.Buffer
	side.Stdout, side.Stderr = &stdout, &stderr
	if err := side.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, env := sidecar.Command(dir, 3, "")
	job := exec.Command(cmd[0], cmd[1:]...)
	job.Dir, job.Env = dir, append(os.Environ(), env...)
	if err := job.Run(); err == nil {
		t.Fatal("the job's wrapper exited 0 after a failing line")
	}
	waited := make(chan error, 1)
	go func() { waited <- side.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("sidecar: %v\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		_ = side.Process.Signal(syscall.SIGTERM)
		t.Fatal("the sidecar did not stop after the job's last event")
	}
	rec := &streamRecorder{}
	if err := sidecar.ReadStream(&stdout, rec); err != nil {
		t.Fatal(err)
	}
	if got := rec.out.String(); got != "0/out:first\n1/err:second\n" {
		t.Errorf("output %q", got)
	}
	if !strings.Contains(rec.types.String(), "container/script-end") {
		t.Errorf("events %s lack the script's end", rec.types.String())
	}
}

type streamRecorder struct {
	out, types strings.Builder
}

func (r *streamRecorder) Event(e events.Event) { r.types.WriteString(string(e.Type) + " ") }
func (r *streamRecorder) Output(command, stream string, data []byte) {
	r.out.WriteString(command + "/" + stream + ":" + string(data))
}
