// Package atomicfile writes a file whole or not at all.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
)

// Write puts at name a new file of mode perm holding what fill writes:
// made beside it and renamed into place, so name is whole or as it was,
// and never written into (a hard link to the old file keeps its bytes).
func Write(name string, perm os.FileMode, fill func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone once renamed
	err = fill(tmp)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
