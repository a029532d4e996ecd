package agent

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The copy keeps what a build may depend on: contents, modes, links and
// modification times, and .git whole (even what .gitignore would name in
// it); it leaves out what .gitignore names.
func TestCopyWorkspaceKeepsModesLinksAndTimes(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(".gitignore", "*.log\n", 0o644)
	write("bin/run.sh", "#!/bin/sh\n", 0o750)
	write("debug.log", "x", 0o644)
	write(".git/HEAD", "ref", 0o644)
	write(".git/logs/x.log", "kept", 0o644)
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "bin/run.sh"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("bin/run.sh", filepath.Join(src, "run")); err != nil {
		t.Fatal(err)
	}
	if err := CopyWorkspace(dst, src); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dst, "bin/run.sh"))
	if err != nil || st.Mode().Perm() != 0o750 || !st.ModTime().Equal(old) {
		t.Errorf("bin/run.sh copied as %v, %v (want 0750, %v)", st, err, old)
	}
	if link, err := os.Readlink(filepath.Join(dst, "run")); err != nil || link != "bin/run.sh" {
		t.Errorf("link %q, %v", link, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "debug.log")); !os.IsNotExist(err) {
		t.Errorf("debug.log was copied")
	}
	for name, want := range map[string]string{".git/HEAD": "ref", ".git/logs/x.log": "kept"} {
		if b, err := os.ReadFile(filepath.Join(dst, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", name, b, err, want)
		}
	}
}
