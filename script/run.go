package script

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/monkeyci/monkeyci/buildscript"
)

// defaultPath is the engine's PATH for an image that sets none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// stopGrace is how long a build script (or an action) has to exit after
// SIGTERM.
const stopGrace = 10 * time.Second

// Stdio is where a build script reads and writes.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// Run runs the build script of the repository in dir (as Detect found it)
// with dir as its working directory, and returns its exit code (128+N when
// a signal N ended it). The directory holding this program comes first on
// the script's PATH, so it finds `monkeyci` whatever the image. Canceling
// ctx sends the script SIGTERM, and SIGKILL 10 s later.
//
// The errors are the user's mistakes, in one line each: a script that is
// not executable, or whose interpreter (sh for build.sh) the image lacks.
func Run(ctx context.Context, dir string, build buildscript.Build, stdio Stdio) (int, error) {
	path := withOwnDir(os.Getenv("PATH"))
	var argv []string
	switch build.Kind {
	case buildscript.Shell:
		sh := lookIn(path, "sh")
		if sh == "" {
			return -1, fmt.Errorf("%s needs a shell, and this image has no sh: the agent's minimal image has none; name an image that has one in %s (image: ...)",
				build.Script, buildscript.ConfigFile)
		}
		argv = []string{sh, build.Script}
	case buildscript.Executable:
		fi, err := os.Stat(filepath.Join(dir, build.Script))
		if err != nil {
			return -1, err
		}
		if fi.Mode()&0o111 == 0 {
			return -1, fmt.Errorf("%s is not executable: make it so (chmod +x; in git, git update-index --chmod=+x %s), or name a shell script %s",
				build.Script, build.Script, buildscript.ShellFile)
		}
		argv = []string{filepath.Join(dir, build.Script)}
	default:
		return -1, fmt.Errorf("%s: not a build script", build.Script)
	}
	cmd := Command(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(withoutPath(os.Environ()), "PATH="+path)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	if err := cmd.Start(); err != nil {
		return -1, startError(dir, build.Script, err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return -1, fmt.Errorf("running %s: %w", build.Script, err)
	}
	st := cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return st.ExitCode(), nil
}

// startError says why a script could not start: most often its #! names
// an interpreter this image lacks.
func startError(dir, script string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		if interp := shebang(filepath.Join(dir, script)); interp != "" {
			return fmt.Errorf("%s starts with #!%s, which this image lacks (the agent's minimal image has only monkeyci): name an image that has it in %s (image: ...)",
				script, interp, buildscript.ConfigFile)
		}
	case errors.Is(err, syscall.ENOEXEC):
		return fmt.Errorf("%s is neither a program for this machine nor a script starting with #!", script)
	}
	return fmt.Errorf("starting %s: %w", script, err)
}

// shebang returns the interpreter line of a script, without "#!".
func shebang(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	line, _ := bufio.NewReader(io.LimitReader(f, 256)).ReadString('\n')
	if !strings.HasPrefix(line, "#!") {
		return ""
	}
	return strings.TrimSpace(line[2:])
}

// withOwnDir puts the directory of this program first on path.
func withOwnDir(path string) string {
	if path == "" {
		path = defaultPath
	}
	exe, err := os.Executable()
	if err != nil {
		return path
	}
	return filepath.Dir(exe) + ":" + path
}

func withoutPath(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PATH=") {
			out = append(out, kv)
		}
	}
	return out
}

// lookIn finds an executable named name in the directories of path.
func lookIn(path, name string) string {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// Command is exec.CommandContext for what a script container runs (a
// build script, an action): when ctx ends the process gets SIGTERM, and
// stopGrace to exit before it is killed.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	return cmd
}
