package admin

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/monkeyci/monkeyci/agent/archive"
)

// An artifact's archive is hostile input: whatever the build ran wrote it.
// Unpacking it writes only under one directory, through an os.Root (no
// name, symlink or race takes a write outside), and refuses outright what
// could only mean to leave it.

// RefusedError is an archive entry Unpack will not write, and why.
type RefusedError struct {
	Entry, Why string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused archive entry %.200q: %s", e.Entry, e.Why)
}

// UnpackOptions say how to unpack an artifact.
type UnpackOptions struct {
	// RootFile names the file an archive of one saved file becomes (its
	// entry is "." itself): the artifact's id.
	RootFile string
	// Limit bounds the bytes of all files together (the archive's own
	// size will do: only sparse entries expand beyond it); 0: no bound.
	Limit int64
	// Warn gets a line for each entry skipped (nil: nowhere).
	Warn io.Writer
}

// Unpacked is what Unpack wrote.
type Unpacked struct {
	Files, Dirs, Symlinks, Skipped int
	Bytes                          int64
}

// CheckArchive reads a whole archive and returns the error Unpack would
// refuse it with, writing nothing: callers that want all or nothing check
// first.
func CheckArchive(r io.Reader, o UnpackOptions) error {
	o.Warn = io.Discard
	_, err := unpack(nil, r, o)
	return err
}

// Unpack writes the entries of a tar archive under root: directories,
// regular files and symlinks (created as they are, never followed to
// write). Other kinds, hard links among them, are skipped with a line to
// o.Warn. It refuses, with a *RefusedError for the first such entry,
// absolute names and names with "..", an entry under a symlink the archive
// made, and files bigger than o.Limit together. What it wrote before a
// refusal stays, and is only ever under root.
func Unpack(root *os.Root, r io.Reader, o UnpackOptions) (Unpacked, error) {
	return unpack(root, r, o)
}

// unpack is Unpack, or CheckArchive when root is nil.
func unpack(root *os.Root, r io.Reader, o UnpackOptions) (Unpacked, error) {
	if o.Warn == nil {
		o.Warn = io.Discard
	}
	u := unpacker{root: root, o: o, symlinks: archive.Symlinks{}}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return u.done, nil
		}
		if err != nil {
			return u.done, fmt.Errorf("reading the archive: %w", err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return u.done, err
		}
	}
}

// unpacker remembers what an archive made so far.
type unpacker struct {
	root     *os.Root // nil: only check
	o        UnpackOptions
	symlinks archive.Symlinks
	done     Unpacked
}

func (u *unpacker) entry(hdr *tar.Header, body io.Reader) error {
	refuse := func(format string, args ...any) error {
		return &RefusedError{Entry: hdr.Name, Why: fmt.Sprintf(format, args...)}
	}
	name, why := archive.CleanName(hdr.Name)
	if why != "" {
		return refuse("%s", why)
	}
	if name == "." && hdr.Typeflag == tar.TypeReg {
		if u.o.RootFile == "" || strings.Contains(u.o.RootFile, "/") {
			return refuse("the archive is of one file, and no name is given for it")
		}
		name = u.o.RootFile // an archive of one saved file
	}
	if link := u.symlinks.Under(name); link != "" {
		return refuse("it would be written through the archive's own symlink %q", link)
	}
	if u.symlinks[name] {
		return refuse("it replaces the archive's own symlink")
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		u.done.Dirs++
		return u.mkdir(name, hdr.FileInfo().Mode().Perm())
	case tar.TypeReg:
		if u.o.Limit > 0 && hdr.Size > u.o.Limit-u.done.Bytes {
			return refuse("its files are bigger than the archive (%d bytes): a sparse file?", u.o.Limit)
		}
		u.done.Files++
		u.done.Bytes += hdr.Size
		return u.file(name, hdr, body)
	case tar.TypeSymlink:
		switch {
		case name == ".":
			return refuse("the directory itself would become a symlink")
		case hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0):
			return refuse("a symlink to no name")
		}
		u.symlinks[name] = true
		u.done.Symlinks++
		return u.symlink(name, hdr.Linkname)
	}
	u.done.Skipped++
	_, err := fmt.Fprintf(u.o.Warn, "monkeyci: skipped archive entry %.200q: %s, not a file, directory or symlink\n", hdr.Name, archive.Kind(hdr.Typeflag))
	return err
}

func (u *unpacker) mkdir(name string, perm fs.FileMode) error {
	if u.root == nil {
		return nil
	}
	if err := u.noSymlinkOn(name, name); err != nil {
		return err
	}
	// The owner keeps the right to write what comes under it.
	if err := u.root.MkdirAll(name, perm|0o700); err != nil {
		return fmt.Errorf("unpacking %s: %w", name, err)
	}
	return nil
}

// noSymlinkOn refuses entry when a directory on the way to dir (itself
// included) is a symlink that was under root before: the root would refuse
// one that leads out anyway, this says so in words, and refuses one that
// leads elsewhere inside too (the entry would not be where it says).
func (u *unpacker) noSymlinkOn(entry, dir string) error {
	if dir == "." {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		at := path.Join(parts[:i+1]...)
		fi, err := u.root.Lstat(at)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil // made from here on
		case err != nil:
			return fmt.Errorf("unpacking %s: %w", entry, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return &RefusedError{Entry: entry, Why: fmt.Sprintf("it would be written through the symlink %q, which was there before", at)}
		}
	}
	return nil
}

// clear makes room for a file or symlink at name: its parents exist, and
// what was there (a file, a symlink: not followed) is gone.
func (u *unpacker) clear(name string) error {
	if err := u.noSymlinkOn(name, path.Dir(name)); err != nil {
		return err
	}
	if err := u.root.MkdirAll(path.Dir(name), 0o755); err != nil {
		return fmt.Errorf("unpacking %s: %w", name, err)
	}
	fi, err := u.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("unpacking %s: %w", name, err)
	case fi.IsDir():
		return fmt.Errorf("unpacking %s: a directory is in the way", name)
	}
	if err := u.root.Remove(name); err != nil {
		return fmt.Errorf("unpacking %s: %w", name, err)
	}
	return nil
}

func (u *unpacker) file(name string, hdr *tar.Header, body io.Reader) error {
	if u.root == nil {
		return nil
	}
	if err := u.clear(name); err != nil {
		return err
	}
	// O_EXCL: a symlink put there since is not followed.
	f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, hdr.FileInfo().Mode().Perm())
	if err != nil {
		return fmt.Errorf("unpacking %s: %w", name, err)
	}
	_, err = io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("unpacking %s: %w", name, err)
	}
	if !hdr.ModTime.IsZero() {
		_ = u.root.Chtimes(name, hdr.ModTime, hdr.ModTime) // as tar does; a file without its time is still the file
	}
	return nil
}

func (u *unpacker) symlink(name, target string) error {
	if u.root == nil {
		return nil
	}
	if err := u.clear(name); err != nil {
		return err
	}
	if err := u.root.Symlink(target, name); err != nil {
		return fmt.Errorf("unpacking %s: %w", name, err)
	}
	return nil
}
