package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// A file is replaced whole, never written into: a hard link to the old
// one keeps its bytes; a failed fill leaves the old file and no litter.
func TestWriteReplacesWholeOrNotAtAll(t *testing.T) {
	dir := t.TempDir()
	name, link := filepath.Join(dir, "f"), filepath.Join(dir, "link")
	if err := os.WriteFile(name, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(name, link); err != nil {
		t.Fatal(err)
	}
	if err := Write(name, 0o755, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{name: "new", link: "old"} {
		if b, err := os.ReadFile(file); err != nil || string(b) != want {
			t.Errorf("%s holds %q (%v), want %q", file, b, err, want)
		}
	}
	if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v (%v), want 0755", fi.Mode(), err)
	}
	failed := errors.New("cut short")
	if err := Write(name, 0o644, func(w io.Writer) error { io.WriteString(w, "half"); return failed }); !errors.Is(err, failed) {
		t.Errorf("error %v, want the fill's", err)
	}
	if b, _ := os.ReadFile(name); string(b) != "new" {
		t.Errorf("after a failed write: %q, want the file as it was", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("left in the folder: %v", entries)
	}
}
