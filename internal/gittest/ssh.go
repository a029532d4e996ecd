package gittest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/monkeyci/monkeyci/internal/loopback"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// SSHServer serves this machine's repositories over SSH with OpenSSH's
// own sshd, on a free loopback port, until the test ends. Only the key it
// returns (a deploy key: an OpenSSH private key, no passphrase) gets in,
// as the user the test runs as. The base URL is ssh://USER@127.0.0.1:PORT,
// to which a repository's absolute path is added.
func SSHServer(t testing.TB) (base, key string) {
	t.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		sshd = "/usr/sbin/sshd"
	}
	if _, err := os.Stat(sshd); err != nil {
		t.Fatalf("gittest: sshd is needed to serve repositories over SSH (apt-get install openssh-server): %v", err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	hostKey := filepath.Join(dir, "host_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		t.Fatalf("gittest: making sshd's host key: %v\n%s", err, out)
	}
	public, key := SSHKey(t)
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, []byte(public), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := loopback.FreeAddr(t)
	config := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(config, []byte(strings.Join([]string{
		"ListenAddress " + addr,
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + authorized,
		"AuthenticationMethods publickey",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"StrictModes no",
		"UsePAM no",
		"PidFile none",
		"AllowUsers " + me.Username,
		"",
	}, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd wants its privilege separation folder, which a machine where
	// the service never ran lacks.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	cmd := exec.Command(sshd, "-D", "-e", "-f", config)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("gittest: starting sshd: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sshd said:\n%s", logs.String())
		}
	})
	if !wait.Poll(30*time.Second, func() bool { return loopback.Accepts(addr) }) {
		t.Fatalf("gittest: sshd does not listen on %s:\n%s", addr, logs.String())
	}
	return fmt.Sprintf("ssh://%s@%s", me.Username, addr), key
}

// SSHKey makes a key pair as ssh-keygen does: the public key in
// authorized_keys form, the private key in OpenSSH's, no passphrase.
func SSHKey(t testing.TB) (public, private string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "deploy key")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(sshPub)), string(pem.EncodeToMemory(block))
}
