package logstore

import (
	"io/fs"
	"path/filepath"
	"testing"
)

// Builds' output is the coordinator user's alone: every directory 0700,
// every file 0600, whatever the umask lets through.
func TestLogsAreOwnerOnly(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Write(key("job", "out"), 0, []byte("a secret printed by mistake\n")); err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(filepath.Join(root, "builds"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s is %o, want %o", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walking the logs: %v, %d files", err, files)
	}
}
