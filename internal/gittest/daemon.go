package gittest

import (
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"
)

// Daemon serves the repositories under root over the git protocol with
// git's own daemon, on a free loopback port, until the test ends; it
// returns the base URL (git://127.0.0.1:PORT).
func Daemon(t testing.TB, root string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--base-path="+root,
		"--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), root)
	if err := cmd.Start(); err != nil {
		t.Fatalf("gittest: starting git daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(30 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "git://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("gittest: git daemon does not listen on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
