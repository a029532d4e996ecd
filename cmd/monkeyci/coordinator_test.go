package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/loopback"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/internal/wait"
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
	if !wait.Poll(wait.Bound, func() bool {
		select {
		case err := <-done:
			t.Fatalf("the coordinator exited (%v) before its export line:\n%s%s", err, out.String(), errOut.String())
		default:
		}
		return strings.Contains(out.String(), "export MONKEYCI_SERVER=")
	}) {
		_ = cmd.Process.Kill()
		t.Fatalf("no export line:\n%s%s", out.String(), errOut.String())
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

// The command line against a real coordinator: a made token is listed by
// its id (never itself), works until revoked and is refused after; an
// agent removed with 'agents rm' is cut off and refused.
func TestTokensAndAgentsRmAgainstARealCoordinator(t *testing.T) {
	dockertest.Engine(t)
	c := startCoordinator(t, t.TempDir(), 10*time.Second)
	as := func(token string, args ...string) (int, string, string) {
		t.Helper()
		return monkeyci(t, append(args, "--server", c.addr, "--ca", c.ca, "--token", token)...)
	}
	code, out, errOut := as(c.admin, "tokens", "create", "--kind", "viewer", "--ttl", "1h", "-o", "json")
	var made struct{ Token, Kind, ID, Expires string }
	if err := json.Unmarshal([]byte(out), &made); code != 0 || err != nil || made.Token == "" || len(made.ID) != 12 || made.Expires == "" {
		t.Fatalf("tokens create: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if code, out, errOut := as(made.Token, "builds", "ls"); code != 0 {
		t.Fatalf("builds ls with the made viewer token: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = as(c.admin, "tokens", "ls")
	if code != 0 || !strings.HasPrefix(out, "ID") || !strings.Contains(out, made.ID+"  viewer") || strings.Contains(out, made.Token) || strings.Contains(out, c.admin) {
		t.Fatalf("tokens ls: exit %d, want the made token by id and no token\n%s%s", code, out, errOut)
	}
	if strings.Count(out, "the coordinator's own") != 2 {
		t.Errorf("tokens ls does not list the coordinator's own two tokens:\n%s", out)
	}
	if code, out, errOut := as(c.admin, "tokens", "revoke", made.ID[:6]); code != 0 || out != "viewer token "+made.ID+" is revoked\n" {
		t.Fatalf("tokens revoke: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := as(made.Token, "builds", "ls"); code != 1 || out != "" || !strings.Contains(errOut, "unknown token") {
		t.Errorf("builds ls with the revoked token: exit %d, want 1 saying the token is unknown\n%s%s", code, out, errOut)
	}
	if code, _, errOut := as(c.admin, "tokens", "create", "--kind", "agent", "--ttl", "-1h"); code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "--ttl") {
		t.Errorf("a negative --ttl: exit %d, want 2 with one line naming --ttl\n%s", code, errOut)
	}

	a := startAgentProcess(t, c, "removable")
	var listed string
	if !wait.Poll(wait.Bound, func() bool {
		_, listed, _ = as(c.admin, "agents", "ls")
		return strings.Contains(listed, "removable") && strings.Contains(listed, "ready")
	}) {
		t.Fatalf("the agent is not ready:\n%s\n%s", listed, a.out)
	}
	if code, out, errOut := as(c.admin, "agents", "rm", "removable"); code != 0 || !strings.HasPrefix(out, "agent removable (") || !strings.HasSuffix(out, ") is removed\n") {
		t.Fatalf("agents rm: exit %d\n%s%s", code, out, errOut)
	}
	if _, out, _ := as(c.admin, "agents", "ls"); strings.Contains(out, "removable") {
		t.Errorf("agents ls lists the removed agent:\n%s", out)
	}
	// The agent hears why and stops: joining again would undo the removal.
	select {
	case err := <-a.done:
		a.done <- err // for the cleanup's wait
		if err == nil || !strings.Contains(a.out.String(), "removed by an admin") {
			t.Errorf("the removed agent exited with %v, want non-zero saying it was removed:\n%s", err, a.out)
		}
	case <-time.After(time.Minute):
		t.Fatalf("the removed agent still runs a minute later:\n%s", a.out)
	}
	if code, _, errOut := as(c.admin, "agents", "rm", "removable"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("agents rm again: exit %d, want 1 saying not found\n%s", code, errOut)
	}
}

// The coordinator's data dir and the agent's state dir hold keys, tokens,
// the database and logs: every directory is 0700 and every file 0600
// (public certificates may be read by whoever can reach them: no one
// else, their directory is 0700). The agent's build and cache folders are
// the builds' own (bind-mounted into their containers) and not walked.
func TestStateIsOwnerOnly(t *testing.T) {
	dockertest.Engine(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	var out, errOut syncbuf.Buffer
	cmd := exec.Command(testbinary.Path(t), "up", "--data-dir", dataDir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--cpus", "1", "--memory", "1g")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	if !wait.Poll(wait.Bound, func() bool {
		return strings.Contains(out.String(), "monkeyci is up") && exists(filepath.Join(dataDir, "agent", "identity.json"))
	}) {
		t.Fatalf("up did not come up (and keep its agent's identity):\n%s%s", out.String(), errOut.String())
	}
	public := map[string]bool{"ca.pem": true, "server.pem": true}
	seen := map[string]bool{}
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dataDir, path)
		if d.IsDir() && (rel == filepath.Join("agent", "builds") || rel == filepath.Join("agent", "caches")) {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		seen[d.Name()] = true
		mode := info.Mode().Perm()
		switch {
		case d.IsDir() && mode != 0o700:
			t.Errorf("directory %s is %o, want 700", rel, mode)
		case !d.IsDir() && public[d.Name()] && mode&0o022 != 0:
			t.Errorf("certificate %s is %o, writable by others", rel, mode)
		case !d.IsDir() && !public[d.Name()] && mode != 0o600:
			t.Errorf("file %s is %o, want 600", rel, mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"state.db", "tokens.json", "master.key", "session.key", "ca-key.pem", "logs", "identity.json"} {
		if !seen[want] {
			t.Errorf("no %s was walked: %v", want, seen)
		}
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestCoordinatorHTTPTLSFlags(t *testing.T) {
	out, _ := runCoordinatorOnce(t, t.TempDir(), "--http-tls")
	if !strings.Contains(out, ", HTTPS on 127.0.0.1:") {
		t.Errorf("--http-tls: the coordinator does not say its HTTP port speaks TLS:\n%s", out)
	}
	missing := filepath.Join(t.TempDir(), "fullchain.pem")
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--http-cert", missing}, 2, "--http-key"},
		{[]string{"--http-cert", missing, "--http-key", missing}, 1, "--http-cert"},
	} {
		code, out, errOut := monkeyci(t, append([]string{"coordinator", "--data-dir", t.TempDir(), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}, c.args...)...)
		if code != c.code || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.says) {
			t.Errorf("%v: exit %d, want %d with one line naming %s\n%s%s", c.args, code, c.code, c.says, out, errOut)
		}
		assertNoStackTrace(t, out+errOut)
	}
}

// A database that cannot be reached, or is not one, is said in a line that
// names it without its password, and the coordinator exits 1 (it used to
// panic closing the store it never opened).
func TestACoordinatorOnADatabaseItCannotReachSaysSo(t *testing.T) {
	for _, c := range []struct{ database, want string }{
		{"postgres://ci:hunter2@" + loopback.FreeAddr(t) + "/ci", "connection refused"},
		{"mysql://ci:hunter2@db/ci", "give a PostgreSQL URL"},
	} {
		code, _, stderr := cli(t, "coordinator", "--data-dir", t.TempDir(), "--database", c.database,
			"--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "hunter2") || strings.Contains(stderr, "panic") {
			t.Errorf("--database %s: exit %d, %q; want 1 and %q, without the password", c.database, code, stderr, c.want)
		}
	}
}
