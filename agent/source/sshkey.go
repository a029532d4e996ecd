package source

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
)

// CheckSSHKey says what is wrong with a deploy key before it is kept: it
// must be a private key ssh reads, without a passphrase (nobody is there
// to type it).
func CheckSSHKey(key string) error {
	_, err := ssh.ParseRawPrivateKey([]byte(key))
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return errors.New("the SSH key has a passphrase: give a deploy key without one (ssh-keygen -N '')")
	case err != nil:
		return fmt.Errorf("not an SSH private key (OpenSSH or PEM, as ssh-keygen writes it): %w", err)
	}
	return nil
}

// sshKeyEnv has git's ssh use the deploy key, and only it: the key in a
// file of the agent's own (0600, under the mirrors' .ssh, never in a
// workspace), removed by forget once the fetch is over. A host's key is
// learnt on the first fetch from it and held to after, in the agent's
// known_hosts: a host whose key changed fails the fetch.
func (m *Mirrors) sshKeyEnv(key string) (env []string, forget func(), err error) {
	if err := CheckSSHKey(key); err != nil {
		return nil, nil, err
	}
	dir := filepath.Join(m.Dir, ".ssh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	f, err := os.CreateTemp(dir, "key-")
	if err != nil {
		return nil, nil, err
	}
	forget = func() { _ = os.Remove(f.Name()) }
	if !strings.HasSuffix(key, "\n") {
		key += "\n" // ssh refuses a key file without its last newline
	}
	_, err = f.WriteString(key)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		forget()
		return nil, nil, err
	}
	command := fmt.Sprintf("ssh -i %s -o IdentitiesOnly=yes -o IdentityAgent=none -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=%s",
		shellQuote(f.Name()), shellQuote(filepath.Join(dir, "known_hosts")))
	return []string{"GIT_SSH_COMMAND=" + command, "GIT_SSH_VARIANT=ssh"}, forget, nil
}

// shellQuote quotes s for sh, which runs GIT_SSH_COMMAND.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// KeyLines are the forms in which a key may be printed, for masking: the
// whole key and each of its lines long enough to be its own (a log is read
// line by line).
func KeyLines(key string) []string {
	if strings.TrimSpace(key) == "" {
		return nil
	}
	forms := []string{strings.TrimSpace(key)}
	for _, line := range strings.Split(key, "\n") {
		if line = strings.TrimSpace(line); len(line) >= 16 && !strings.HasPrefix(line, "-----") {
			forms = append(forms, line)
		}
	}
	return forms
}
