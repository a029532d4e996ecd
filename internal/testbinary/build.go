// Package testbinary builds the monkeyci binary once per test process, for
// tests that need the real program: in a script container, or killed with
// a real signal.
package testbinary

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	once sync.Once
	path string
	err  error
	out  []byte
)

// Path returns a freshly built static monkeyci binary. The fast tier (go
// test -short) builds none: there the test is skipped.
func Path(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the monkeyci binary built: not in the -short tier")
	}
	once.Do(func() {
		_, here, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(here), "..", "..")
		// One shared path per source tree, replaced atomically: test
		// processes of several packages may build at once, and the same
		// bytes keep the same agent image. Trees (git worktrees of other
		// branches) never share one: a test must run its own tree's code.
		sum := sha256.Sum256([]byte(root))
		dir := filepath.Join(os.TempDir(), "monkeyci-test-bin", hex.EncodeToString(sum[:6]))
		if err = os.MkdirAll(dir, 0o755); err != nil {
			return
		}
		var tmp *os.File
		if tmp, err = os.CreateTemp(dir, ".build-*"); err != nil {
			return
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		cmd := exec.Command("go", "build", "-trimpath", "-o", tmp.Name(), "./cmd/monkeyci")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err = cmd.CombinedOutput(); err != nil {
			return
		}
		path = filepath.Join(dir, "monkeyci")
		err = os.Rename(tmp.Name(), path)
	})
	if err != nil {
		t.Fatalf("building monkeyci: %v\n%s", err, out)
	}
	return path
}
