package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// CopyWorkspace copies dir's working tree into dst: files as they are now,
// uncommitted changes included, .git whole (git log, git describe and the
// tools that stamp a version from git work in a job), without what the
// repository's .gitignore files (and .git/info/exclude) ignore; modes,
// owners, modification times and symbolic links kept. ` + "`monkeyci script`" + `
// runs it in the script container, from the source mounted read-only: a
// copy there costs milliseconds, an archive copy through the engine's API
// 100 ms or more.
func CopyWorkspace(dst, dir string) error {
	patterns, err := gitignore.ReadPatterns(osfs.New(dir), nil)
	if err != nil {
		return fmt.Errorf("reading .gitignore files of %s: %w", dir, err)
	}
	ignored := gitignore.NewMatcher(patterns)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if parts[0] != ".git" && ignored.Match(parts, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		return copyEntry(path, filepath.Join(dst, rel), d)
	})
	if err != nil {
		return fmt.Errorf("copying %s: %w", dir, err)
	}
	return nil
}

// copyEntry copies one file, directory or symbolic link; other kinds
// (devices, sockets, pipes) are no part of a tree to build and are left out.
func copyEntry(path, target string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	mode := info.Mode()
	switch {
	case d.IsDir():
		if err := os.Mkdir(target, mode.Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case mode&fs.ModeSymlink != 0:
		link, err := os.Readlink(path)
		if err != nil {
			return err
		}
		if err := os.Symlink(link, target); err != nil {
			return err
		}
	case mode.IsRegular():
		if err := copyFile(path, target, mode.Perm()); err != nil {
			return err
		}
		if err := os.Chtimes(target, info.ModTime(), info.ModTime()); err != nil {
			return err
		}
	default:
		return nil
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	if mode&fs.ModeSymlink == 0 { // the umask must not trim the mode
		return os.Chmod(target, mode.Perm())
	}
	return nil
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
