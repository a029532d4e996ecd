package sidecar

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// openIn opens name inside the directory dir without following a symlink,
// and only if it is a regular file (or, with isDir, a directory). The files
// are made by the job, which may be hostile and root in its container: a
// symlink could point at a host file and a device node (mknod is allowed by
// Docker's default capabilities) at a host disk. So the check is made on an
// O_PATH handle and the same inode is then reopened through /proc, with no
// window for a swap and no open() of a device at all.
func openIn(dir *os.File, name string, isDir bool) (*os.File, error) {
	p, err := unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: filepath.Join(dir.Name(), name), Err: err}
	}
	defer unix.Close(p)
	var st unix.Stat_t
	if err := unix.Fstat(p, &st); err != nil {
		return nil, err
	}
	want, flags := uint32(unix.S_IFREG), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY
	if isDir {
		want, flags = unix.S_IFDIR, flags|unix.O_DIRECTORY
	}
	if st.Mode&unix.S_IFMT != want {
		return nil, fmt.Errorf("%s: not a regular file or directory as expected", filepath.Join(dir.Name(), name))
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(p), flags, 0)
	if err != nil {
		return nil, &os.PathError{Op: "reopen", Path: filepath.Join(dir.Name(), name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name)), nil
}
