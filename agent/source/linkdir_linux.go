package source

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// linkInPlace turns the empty folder dir into a link to target with no
// moment at which dir is missing: the build's script container is made
// while its source is fetched, and the engine refuses to make one whose
// bind source does not exist. The link is made beside dir and swapped
// with it in one step; where the file system cannot swap, dir is
// replaced.
func linkInPlace(target, dir string) error {
	tmp := dir + ".link"
	os.Remove(tmp) // one a crash left
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		if err := os.Remove(tmp); err != nil {
			return err
		}
		return replaceWithLink(target, dir)
	}
	if err != nil {
		os.Remove(tmp)
		return &os.LinkError{Op: "exchange", Old: tmp, New: dir, Err: err}
	}
	return os.Remove(tmp) // the empty folder, now
}
