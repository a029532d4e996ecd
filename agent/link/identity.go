package link

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// identity is what the agent keeps across restarts.
type identity struct {
	ID         string `json:"id"`
	Credential string `json:"credential"`
}

func (l *Link) identityFile() string { return IdentityFile(l.cfg.StateDir) }

func (l *Link) loadIdentity() error {
	data, err := os.ReadFile(l.identityFile())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the agent's identity: %w", err)
	}
	var id identity
	if err := json.Unmarshal(data, &id); err != nil {
		return fmt.Errorf("%s: %w (remove it to join again)", l.identityFile(), err)
	}
	l.id, l.token = id.ID, id.Credential
	return nil
}

// refused says what a failed join means: a saved credential the
// coordinator no longer knows is dropped for the join token, when there
// is one (the next session joins as a new agent); a refused join token,
// a refused credential and no join token, or an agent the coordinator
// knows and refuses (removed), is a RefusedError.
func (l *Link) refused(id string, err error) error {
	if status.Code(err) == codes.PermissionDenied {
		// Removed by an admin (agents rm): joining again would undo that.
		return &RefusedError{fmt.Sprintf("the coordinator at %s refused agent %s: %s; to join this machine again as a new agent, remove %s and start it with a join token",
			l.cfg.Coordinator, id, status.Convert(err).Message(), IdentityFile(l.cfg.StateDir))}
	}
	if status.Code(err) != codes.Unauthenticated {
		return fmt.Errorf("joining: %w", err)
	}
	why := status.Convert(err).Message()
	switch {
	case id == "":
		return &RefusedError{fmt.Sprintf("the coordinator at %s refused the join token (%s): check --join-token (or MONKEYCI_JOIN_TOKEN)", l.cfg.Coordinator, why)}
	case l.cfg.JoinToken == "":
		return &RefusedError{fmt.Sprintf("the coordinator at %s no longer knows agent %s (%s): give it a join token (--join-token or MONKEYCI_JOIN_TOKEN) to join again as a new agent", l.cfg.Coordinator, id, why)}
	}
	l.log.Warn("the coordinator no longer knows this agent's credential; joining again with the join token", "agent", id, "reason", why)
	if err := l.forgetIdentity(); err != nil {
		return &RefusedError{err.Error()}
	}
	return fmt.Errorf("joining as agent %s: %w", id, err)
}

// IdentityFile is where an agent with state dir dir keeps its identity.
func IdentityFile(dir string) string { return filepath.Join(dir, "identity.json") }

// forgetIdentity drops the agent's id and credential: it joins again.
func (l *Link) forgetIdentity() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.id, l.token = "", ""
	if err := os.Remove(l.identityFile()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the refused identity: %w", err)
	}
	return nil
}

func (l *Link) saveIdentity(id, credential string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.id = id
	if credential == "" {
		return nil
	}
	l.token = credential
	data, _ := json.Marshal(identity{ID: id, Credential: credential})
	if err := os.MkdirAll(l.cfg.StateDir, 0o700); err != nil {
		return err
	}
	tmp := l.identityFile() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("keeping the agent's identity: %w", err)
	}
	return os.Rename(tmp, l.identityFile())
}
