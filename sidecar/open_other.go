//go:build !linux

package sidecar

import (
	"fmt"
	"os"
	"path/filepath"
)

// openIn opens name inside dir if it is a regular file (or, with isDir, a
// directory) and not a symlink. Outside Linux this is path based, with a
// small window between the check and the open; agents run on Linux.
func openIn(dir *os.File, name string, isDir bool) (*os.File, error) {
	p := filepath.Join(dir.Name(), name)
	st, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	if st.IsDir() != isDir || !isDir && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file or directory as expected", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	if st2, err := f.Stat(); err != nil || !os.SameFile(st, st2) {
		f.Close()
		return nil, fmt.Errorf("%s: changed while opening", p)
	}
	return f, nil
}
