package agent

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// An archive is a tar file on the host holding a path of a job's container,
// with entry names rooted at "/" so it can be restored into any container
// with one copy to "/", whether or not the path's parents exist there.
// Artifacts live for one build, caches across a repository's builds.

// saveArchive copies containerPath out of container id into file (written
// atomically, so a failed save never leaves half a cache).
func saveArchive(ctx context.Context, rt Runtime, id, containerPath, file string) error {
	rc, err := rt.CopyFrom(ctx, id, containerPath)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".save-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := reroot(tmp, rc, path.Dir(containerPath)); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// restoreArchive copies file into container id; a missing file is reported
// with errNoArchive.
func restoreArchive(ctx context.Context, rt Runtime, id, file string) error {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return errNoArchive
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return rt.CopyTo(ctx, id, "/", f)
}

var errNoArchive = errors.New("nothing saved under that id")

// reroot rewrites the entries of a container copy (named from the copied
// path's base name) to names rooted at "/". Parent directories get no entry
// of their own: the engine makes missing ones, and an entry would reset the
// owner and mode of existing ones (a job's home, /tmp).
func reroot(w io.Writer, r io.Reader, parent string) error {
	tw := tar.NewWriter(w)
	prefix := strings.Trim(parent, "/")
	if prefix != "" {
		prefix += "/"
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return fmt.Errorf("reading container copy: %w", err)
		}
		hdr.Name = prefix + hdr.Name
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = prefix + hdr.Linkname
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// containerPath resolves an artifact's path against the job's work dir.
func containerPath(workDir, p string) string {
	if path.IsAbs(p) {
		return path.Clean(p)
	}
	return path.Join(workDir, p)
}

// fileKey is the file of an artifact, cache or job id. Ids are checked
// where jobs are read (letters, digits, '.', '_', '-'), so they are file
// names already.
func fileKey(id string) string { return id + ".tar" }
