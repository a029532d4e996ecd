package link

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrStateDirBusy: another agent process holds the state dir.
var ErrStateDirBusy = errors.New("another agent process uses this state directory")

// LockStateDir takes dir (made if needed) for this process alone, so two
// agents never share an identity or each other's build files. The lock
// is an flock on dir/lock: it lasts until the returned file is closed or
// the process ends, however it ends (kill -9 included).
func LockStateDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrStateDirBusy)
		}
		return nil, fmt.Errorf("locking the state dir %s: %w", dir, err)
	}
	return f, nil
}

// MaxStateSlots bounds the agents that share a default state dir's
// parent: agent, agent-2, ... agent-16.
const MaxStateSlots = 16

// LockSlot takes the first free state dir of the agents under parent:
// parent/agent, else parent/agent-2, and so on. It returns the dir, its
// slot (1, 2, ...) and the lock (LockStateDir). So agents started side by
// side with the default state dir each get their own.
func LockSlot(parent string) (string, int, *os.File, error) {
	for slot := 1; slot <= MaxStateSlots; slot++ {
		dir := filepath.Join(parent, "agent")
		if slot > 1 {
			dir = fmt.Sprintf("%s-%d", dir, slot)
		}
		f, err := LockStateDir(dir)
		if errors.Is(err, ErrStateDirBusy) {
			continue
		}
		return dir, slot, f, err
	}
	return "", 0, nil, fmt.Errorf("%d agents use the state dirs under %s already: give this one --state-dir", MaxStateSlots, parent)
}
