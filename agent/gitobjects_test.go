package agent

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Only absolute, clean paths of existing folders named objects are
// mounted: whatever else an alternates file says is left out.
func TestBorrowedObjects(t *testing.T) {
	src, store := t.TempDir(), filepath.Join(t.TempDir(), "mirror.git", "objects")
	notObjects := t.TempDir()
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	info := filepath.Join(src, ".git", "objects", "info")
	if err := os.MkdirAll(info, 0o755); err != nil {
		t.Fatal(err)
	}
	lines := []string{
		store,
		"../../elsewhere/objects",             // relative
		filepath.Join(store, "..", "objects"), // not clean
		filepath.Join(t.TempDir(), "gone/objects"), // missing
		notObjects, // not an object store
		"/etc",
		"",
	}
	if err := os.WriteFile(filepath.Join(info, "alternates"), []byte(joinLines(lines)), 0o644); err != nil {
		t.Fatal(err)
	}
	got := borrowedObjects(src)
	if want := []Mount{{Source: store, Target: store, ReadOnly: true}}; !slices.Equal(got, want) {
		t.Errorf("mounts %+v, want %+v", got, want)
	}
	if got := borrowedObjects(t.TempDir()); got != nil {
		t.Errorf("a source without alternates: %+v", got)
	}
}

func joinLines(lines []string) string {
	s := ""
	for _, l := range lines {
		s += l + "\n"
	}
	return s
}
