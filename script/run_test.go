package script

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/buildscript"
)

// scriptDir writes a repository holding one build script.
func scriptDir(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".monkeyci"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRunGivesTheScriptsExitCodeOutputAndPath(t *testing.T) {
	dir := scriptDir(t, buildscript.ShellFile, "pwd\necho \"${PATH%%:*}\"\necho oops >&2\nexit 3\n", 0o644)
	var out, errw bytes.Buffer
	code, err := Run(context.Background(), dir, buildscript.Build{Kind: buildscript.Shell, Script: buildscript.ShellFile}, Stdio{Out: &out, Err: &errw})
	if err != nil || code != 3 {
		t.Fatalf("exit %d, %v", code, err)
	}
	exe, _ := os.Executable()
	if want := dir + "\n" + filepath.Dir(exe) + "\n"; out.String() != want {
		t.Errorf("stdout %q, want %q (the workspace, then this program's folder first on PATH)", out.String(), want)
	}
	if errw.String() != "oops\n" {
		t.Errorf("stderr %q", errw.String())
	}
}

func TestRunReportsASignal(t *testing.T) {
	dir := scriptDir(t, buildscript.ExecutableFile, "#!/bin/sh\nkill -TERM $$\n", 0o755)
	code, err := Run(context.Background(), dir, buildscript.Build{Kind: buildscript.Executable, Script: buildscript.ExecutableFile}, Stdio{})
	if err != nil || code != 128+15 {
		t.Errorf("exit %d, %v; want 143", code, err)
	}
}

func TestRunSaysWhyAScriptCannotStart(t *testing.T) {
	exec := buildscript.Build{Kind: buildscript.Executable, Script: buildscript.ExecutableFile}
	tests := []struct {
		name    string
		dir     string
		build   buildscript.Build
		path    string
		wantErr string
	}{
		{"not executable", scriptDir(t, buildscript.ExecutableFile, "#!/bin/sh\n", 0o644), exec, "",
			".monkeyci/build is not executable: make it so (chmod +x; in git, git update-index --chmod=+x .monkeyci/build), or name a shell script .monkeyci/build.sh"},
		{"no interpreter", scriptDir(t, buildscript.ExecutableFile, "#!/no/such/sh -e\n", 0o755), exec, "",
			".monkeyci/build starts with #!/no/such/sh -e, which this image lacks"},
		{"no shell", scriptDir(t, buildscript.ShellFile, "true\n", 0o644), buildscript.Build{Kind: buildscript.Shell, Script: buildscript.ShellFile}, t.TempDir(),
			".monkeyci/build.sh needs a shell, and this image has no sh"},
		{"not a program", scriptDir(t, buildscript.ExecutableFile, "just text\n", 0o755), exec, "",
			".monkeyci/build is neither a program for this machine nor a script starting with #!"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.path != "" {
				t.Setenv("PATH", tc.path)
			}
			_, err := Run(context.Background(), tc.dir, tc.build, Stdio{})
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
}
