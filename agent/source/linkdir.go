package source

import "os"

// replaceWithLink removes the empty folder dir and makes it a link to
// target: for a moment, dir is missing.
func replaceWithLink(target, dir string) error {
	if err := os.Remove(dir); err != nil {
		return err
	}
	return os.Symlink(target, dir)
}
