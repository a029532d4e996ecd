package engine_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/agent/engine"
)

// The agent's image holds the binary at BinaryPath as its entrypoint, the
// directories a script container mounts over, and is named by the binary:
// made once, and anew for another build of the binary.
func TestEnsureAgentImage(t *testing.T) {
	ctx := context.Background()
	rt := newFakeEngine()
	binary := filepath.Join(t.TempDir(), "monkeyci")
	if err := os.WriteFile(binary, []byte("first build"), 0o755); err != nil {
		t.Fatal(err)
	}
	ref, err := engine.EnsureAgentImage(ctx, rt, binary)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := engine.ShortHash(binary)
	if err != nil || len(tag) != 12 {
		t.Fatalf("short hash %q, %v", tag, err)
	}
	if ref != "monkeyci/agent:"+tag {
		t.Errorf("ref %q, want monkeyci/agent:%s", ref, tag)
	}
	if got := rt.entrypoint[ref]; !slices.Equal(got, []string{engine.BinaryPath}) {
		t.Errorf("entrypoint %q", got)
	}
	files := readTar(t, rt.images[ref])
	if files[strings.TrimPrefix(engine.BinaryPath, "/")] != "first build" {
		t.Errorf("the binary is not at %s: %v", engine.BinaryPath, files)
	}
	for _, dir := range []string{"tmp/", "workspace/", "run/monkeyci/", "opt/monkeyci/bin/"} {
		if _, ok := files[dir]; !ok {
			t.Errorf("no directory %s: %v", dir, files)
		}
	}

	rt.images[ref] = nil // made already: not imported again
	if again, err := engine.EnsureAgentImage(ctx, rt, binary); err != nil || again != ref || rt.images[ref] != nil {
		t.Errorf("second call: %q, %v, imported again: %v", again, err, rt.images[ref] != nil)
	}

	if err := os.WriteFile(binary, []byte("second build"), 0o755); err != nil {
		t.Fatal(err)
	}
	if next, err := engine.EnsureAgentImage(ctx, rt, binary); err != nil || next == ref {
		t.Errorf("another binary: %q, %v; want a new image", next, err)
	}
}

// readTar returns the tar's entries: a file's content, "" for a directory.
func readTar(t *testing.T, b []byte) map[string]string {
	t.Helper()
	files := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = string(content)
	}
}
