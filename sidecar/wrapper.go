// Package sidecar holds the job wrapper (a fixed sh script that runs a job's
// lines and writes MonkeyCI's event log) and the tailer that follows that log
// and the per-line output files, in the agent or as a standalone sidecar.
package sidecar

import (
	_ "embed"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
)

// wrapper is run.sh: the same bytes for every job, no user text in it.
//
//go:embed run.sh
var wrapper []byte

// Names inside a job directory.
const (
	WrapperFile = "run.sh"
	LinesDir    = "lines"      // lines/0, lines/1, ...: each script line verbatim
	EventsFile  = "events.edn" // appended by the wrapper
	LogsDir     = "logs"       // logs/N_out.log, logs/N_err.log
)

// DefaultShell runs the script lines when the job names none.
const DefaultShell = "sh"

// Write puts the wrapper and one file per script line into dir, a host
// directory that will be mounted into the job container, and creates an
// empty event file and the log dir. dir should be new or empty.
//
// events.edn and logs/ are writable by every uid because the job's image may
// run as any user; keep dir's parent private to the agent.
func Write(dir string, lines []string) error {
	if err := os.MkdirAll(filepath.Join(dir, LinesDir), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, WrapperFile), wrapper, 0o755); err != nil {
		return err
	}
	for i, l := range lines {
		// The trailing newline ends the last line for every shell; the text
		// itself is untouched.
		if err := os.WriteFile(filepath.Join(dir, LinesDir, strconv.Itoa(i)), []byte(l+"\n"), 0o644); err != nil {
			return err
		}
	}
	logs := filepath.Join(dir, LogsDir)
	if err := os.MkdirAll(logs, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(logs, 0o777); err != nil { // past the umask
		return err
	}
	ev := filepath.Join(dir, EventsFile)
	if err := os.WriteFile(ev, nil, 0o666); err != nil {
		return err
	}
	return os.Chmod(ev, 0o666)
}

// Command returns the job container's command and the environment it needs
// to run the wrapper from containerDir (where dir is mounted), running lines
// script lines with shell (DefaultShell when empty). containerDir must be an
// absolute path without quotes, backslashes or newlines (the wrapper refuses
// it otherwise, with exit code 125).
func Command(containerDir string, lines int, shell string) (cmd []string, env []string) {
	if shell == "" {
		shell = DefaultShell
	}
	cmd = []string{"/bin/sh", path.Join(containerDir, WrapperFile)}
	env = []string{
		"MONKEYCI_JOB_DIR=" + containerDir,
		"MONKEYCI_LINES=" + strconv.Itoa(lines),
		"MONKEYCI_SHELL=" + shell,
	}
	return cmd, env
}

// LogFile is the name, inside LogsDir, of a command's stream ("out" or "err").
func LogFile(command, stream string) string {
	return fmt.Sprintf("%s_%s.log", command, stream)
}
