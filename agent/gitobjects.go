package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// borrowedObjects are the object stores the source's .git borrows
// (objects/info/alternates: a checkout of the agent's mirror borrows the
// mirror's), each mounted read-only at its own path in the build's job
// containers so that git works there. Only absolute paths of existing
// folders named objects count; the rest is left out (git then says what
// it misses).
func borrowedObjects(source string) []Mount {
	if source == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(source, ".git", "objects", "info", "alternates"))
	if err != nil {
		return nil
	}
	var mounts []Mount
	for _, line := range strings.Split(string(b), "\n") {
		p := strings.TrimSpace(line)
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || filepath.Base(p) != "objects" {
			continue
		}
		if st, err := os.Stat(p); err != nil || !st.IsDir() || slices.ContainsFunc(mounts, func(m Mount) bool { return m.Target == p }) {
			continue
		}
		mounts = append(mounts, Mount{Source: p, Target: p, ReadOnly: true})
	}
	return mounts
}
