package agent

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// WriteWorkspace writes dir's working tree as a tar stream: files as they are
// now, uncommitted changes included, without .git and without what the
// repository's .gitignore files (and .git/info/exclude) ignore.
func WriteWorkspace(w io.Writer, dir string) error {
	patterns, err := gitignore.ReadPatterns(osfs.New(dir), nil)
	if err != nil {
		return fmt.Errorf("reading .gitignore files of %s: %w", dir, err)
	}
	ignored := gitignore.NewMatcher(patterns)
	tw := tar.NewWriter(w)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if d.Name() == ".git" || ignored.Match(parts, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		return addToTar(tw, path, filepath.ToSlash(rel), d)
	})
	if err != nil {
		return fmt.Errorf("copying %s: %w", dir, err)
	}
	return tw.Close()
}

func addToTar(tw *tar.Writer, path, name string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	link := ""
	if info.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(path); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if d.IsDir() {
		hdr.Name += "/"
	}
	// Numeric owners only: names mean nothing inside the container.
	hdr.Uname, hdr.Gname = "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
