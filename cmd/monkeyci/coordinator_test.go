package main

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/testbinary"
)

// runCoordinatorOnce starts a real coordinator on dataDir, waits for its
// export line, stops it with SIGTERM and returns all it printed.
func runCoordinatorOnce(t *testing.T, dataDir string, extra ...string) (stdout, stderr string) {
	t.Helper()
	var out, errOut syncbuf.Buffer
	cmd := exec.Command(testbinary.Path(t), append([]string{"coordinator", "--data-dir", dataDir,
		"--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--log-level", "info"}, extra...)...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "export MONKEYCI_SERVER=") {
		select {
		case err := <-done:
			t.Fatalf("the coordinator exited (%v) before its export line:\n%s%s", err, out.String(), errOut.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no export line within a minute:\n%s%s", out.String(), errOut.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the coordinator exited with %v after SIGTERM:\n%s", err, errOut.String())
		}
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("the coordinator did not stop within a minute of SIGTERM")
	}
	return out.String(), errOut.String()
}

// The first start makes the tokens and prints them with the export line
// for the command line; a second start on the same data dir prints no
// token anywhere, only where the admin token is kept.
func TestCoordinatorPrintsATokenOnlyWhenItMakesIt(t *testing.T) {
	dataDir := t.TempDir()
	first, _ := runCoordinatorOnce(t, dataDir)
	join, admin := keptTokens(t, dataDir)
	for _, want := range []string{"join token:  " + join, "admin token: " + admin, "MONKEYCI_CA=" + dataDir, "MONKEYCI_TOKEN=" + admin + "\n"} {
		if !strings.Contains(first, want) {
			t.Errorf("the first start did not print %q:\n%s", want, first)
		}
	}
	second, errOut := runCoordinatorOnce(t, dataDir)
	for _, tok := range []string{join, admin} {
		if strings.Contains(second+errOut, tok) {
			t.Errorf("a later start printed a token:\n%s%s", second, errOut)
		}
	}
	if !strings.Contains(second, "export MONKEYCI_SERVER=127.0.0.1:") || !strings.Contains(second, "tokens.json") {
		t.Errorf("a later start has no export line naming where the token is:\n%s", second)
	}
	// A token given by flag is the operator's: never printed.
	given, _ := runCoordinatorOnce(t, t.TempDir(), "--admin-token", "given-admin-token", "--join-token", "given-join-token")
	if strings.Contains(given, "given-") || strings.Contains(given, "token: ") {
		t.Errorf("tokens given by flag were printed:\n%s", given)
	}
}

func TestHTTPListenHelpNamesWhatThePortServes(t *testing.T) {
	for _, command := range []string{"coordinator", "up"} {
		code, out, _ := monkeyci(t, command, "--help")
		i := strings.Index(out, "--http-listen string")
		if code != 0 || i < 0 {
			t.Fatalf("%s --help: exit %d\n%s", command, code, out)
		}
		line, _, _ := strings.Cut(out[i:], "\n")
		for _, want := range []string{"dashboard", "webhooks", "/healthz", "/metrics"} {
			if !strings.Contains(line, want) {
				t.Errorf("%s --http-listen help does not name %s: %q", command, want, line)
			}
		}
	}
}
