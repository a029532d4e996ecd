package pipeline

import (
	"fmt"
	"path"
	"strconv"
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

// checkRestoresApart refuses a job's restore paths (restored artifacts,
// then caches) that are one another or lie one inside another: the
// later restore could be written through a symlink the earlier placed,
// out of its own path.
func checkRestoresApart(j *Job, add func(key, format string, args ...any)) {
	type restore struct{ key, name, path string }
	var seen []restore
	for _, list := range []struct {
		key  string
		arts []Artifact
	}{{"restore-artifacts", j.RestoreArtifacts}, {"caches", j.Caches}} {
		for i, a := range list.arts {
			if a.Path == "" || ArchivePath(a.Path) != nil {
				continue // said already
			}
			r := restore{list.key + "." + strconv.Itoa(i), fmt.Sprintf("%s[%d]", list.key, i), path.Clean(a.Path)}
			for _, o := range seen {
				if within(r.path, o.path) || within(o.path, r.path) {
					add(j.pathKey(r.key), "%s: path %q overlaps %s's %q, expected restore paths apart from one another", r.name, a.Path, o.name, o.path)
					break
				}
			}
			seen = append(seen, r)
		}
	}
}

// within says whether clean relative path p is dir or lies under it.
func within(p, dir string) bool {
	return p == dir || dir == "." || strings.HasPrefix(p, dir+"/")
}

// pathKey is the position key of an {id, path} entry's path, or of the
// entry when the path's own is unknown (a job built in code).
func (j *Job) pathKey(key string) string {
	if _, ok := j.Pos[key+".path"]; ok {
		return key + ".path"
	}
	return key
}
