//go:build linux

package source

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// The script container is made while its source is fetched, and the
// engine refuses a bind source that does not exist: the folder that
// becomes a link to the checkout must exist all along (seen in CI as
// "bind source path does not exist").
func TestAFolderBecomesALinkWithoutEverBeingMissing(t *testing.T) {
	root := t.TempDir()
	work := filepath.Join(root, "work")
	if err := os.WriteFile(filepath.Join(root, "marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "file"), []byte("checked out"), 0o644); err != nil {
		t.Fatal(err)
	}
	var missing atomic.Int64
	for i := range 300 {
		dir := filepath.Join(root, "src")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := os.Stat(dir); err != nil {
					missing.Add(1)
				}
			}
		}()
		err := linkInPlace(work, dir)
		close(stop)
		<-done
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "file")); err != nil || string(b) != "checked out" {
			t.Fatalf("round %d: through the link: %q %v", i, b, err)
		}
		if err := os.Remove(dir); err != nil { // the link, as a build's release does
			t.Fatal(err)
		}
	}
	if n := missing.Load(); n > 0 {
		t.Errorf("the folder was missing %d times while it became a link", n)
	}
	left, _ := filepath.Glob(filepath.Join(root, "*"))
	if len(left) != 2 {
		t.Errorf("left beside the checkout: %q", left)
	}
}
