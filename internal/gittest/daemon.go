package gittest

import (
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/loopback"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// Daemon serves the repositories under root over the git protocol with
// git's own daemon, on a free loopback port, until the test ends; it
// returns the base URL (git://127.0.0.1:PORT).
func Daemon(t testing.TB, root string) string {
	t.Helper()
	addr := loopback.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+root,
		"--listen=127.0.0.1", "--port="+port, root)
	if err := cmd.Start(); err != nil {
		t.Fatalf("gittest: starting git daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if !wait.Poll(30*time.Second, func() bool { return loopback.Accepts(addr) }) {
		t.Fatalf("gittest: git daemon does not listen on %s", addr)
	}
	return "git://" + addr
}
