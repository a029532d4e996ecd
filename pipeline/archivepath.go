package pipeline

import (
	"fmt"
	"path"
	"strings"
)

// ArchivePath checks the path of an artifact, cache or restore: it names a
// place relative to the job's work dir and must stay inside it, since an
// archive restored there is written nowhere else. An absolute path or one
// whose ".." leaves the work dir is refused; the error says what to write
// instead.
func ArchivePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("path must not be empty, expected a path relative to the work dir like \"node_modules\"")
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q holds a NUL byte, expected a path relative to the work dir", p)
	case path.IsAbs(p):
		return fmt.Errorf("path %q is absolute, expected a path relative to the work dir like %q", p, suggestRelative(p))
	}
	if c := path.Clean(p); c == ".." || strings.HasPrefix(c, "../") {
		return fmt.Errorf("path %q leaves the work dir, expected a path inside it like \"node_modules\"", p)
	}
	return nil
}

// suggestRelative is an absolute path's last element, as an example of a
// relative one.
func suggestRelative(p string) string {
	if b := path.Base(p); b != "/" && b != "." {
		return b
	}
	return "node_modules"
}
