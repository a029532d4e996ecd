package source

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A kept worktree's index is dated now before its next checkout (so git
// reads no file it wrote in the index's second again); one still linked
// to another worktree's is left as it is.
func TestTrustIndex(t *testing.T) {
	past := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, tt := range []struct {
		name   string
		linked bool
		moved  bool
	}{
		{"its own index", false, true},
		{"an index linked to another worktree's", true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dotGit := t.TempDir()
			index := filepath.Join(dotGit, "index")
			if err := os.WriteFile(index, []byte("DIRC"), 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.linked {
				if err := os.Link(index, filepath.Join(t.TempDir(), "index")); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chtimes(index, past, past); err != nil {
				t.Fatal(err)
			}
			before := time.Now().Add(-time.Second)
			trustIndex(dotGit)
			fi, err := os.Stat(index)
			if err != nil {
				t.Fatal(err)
			}
			if moved := fi.ModTime().After(before); moved != tt.moved {
				t.Errorf("the index's time is %v: moved %v, want %v", fi.ModTime(), moved, tt.moved)
			}
		})
	}
	trustIndex(t.TempDir()) // no index yet: nothing to do, no panic
}
