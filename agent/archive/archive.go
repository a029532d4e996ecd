// Package archive keeps the tar archives of artifacts and caches: entries
// are saved relative to the path a job declared, and placed back only under
// the path the restoring job declares. It is pure (streams in, streams
// out): an archive is hostile input, written by whatever the saving build
// ran, so Place refuses anything that could land outside its place.
package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Root is the entry name of the saved path itself.
const Root = "."

// Relative rewrites a container copy of a path (entries named from the
// path's base name, as the engine makes them) to entries relative to that
// path: the path itself is Root, what is under it "a/b".
func Relative(w io.Writer, r io.Reader) error {
	tw := tar.NewWriter(w)
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return fmt.Errorf("reading container copy: %w", err)
		}
		hdr.Name = stripBase(hdr.Name)
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = stripBase(hdr.Linkname)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// stripBase drops a copy's first element, the copied path's base name.
func stripBase(name string) string {
	name = strings.TrimPrefix(path.Clean(name), "/")
	if _, rest, ok := strings.Cut(name, "/"); ok {
		return rest
	}
	return Root
}

// RefusedError is an entry Place will not write, and why.
type RefusedError struct {
	Entry, Why string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("refused archive entry %q: %s", e.Entry, e.Why)
}

// Place rewrites an archive saved by Relative into a stream to extract at
// "/" of a container, every entry under dest (an absolute, clean path). It
// refuses, with a *RefusedError for the first such entry, absolute names
// and names with "..", an entry under a symlink the archive made itself
// (writing through it), a symlink at dest itself, hard links to anything
// but a file the archive wrote before, and devices, fifos and other kinds.
// What it wrote before a refusal is only ever under dest; callers that
// want all or nothing check the whole archive first (Place to io.Discard).
func Place(w io.Writer, r io.Reader, dest string) error {
	if !path.IsAbs(dest) || path.Clean(dest) != dest {
		return fmt.Errorf("destination %q is not an absolute clean path", dest)
	}
	prefix := strings.TrimPrefix(dest, "/")
	at := func(rel string) string {
		switch {
		case rel == Root:
			return prefix
		case prefix == "":
			return rel
		}
		return prefix + "/" + rel
	}
	p := placer{symlinks: Symlinks{}, files: map[string]bool{}}
	tw := tar.NewWriter(w)
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return tw.Close()
		}
		if err != nil {
			return fmt.Errorf("reading archive: %w", err)
		}
		rel, err := p.check(hdr)
		if err != nil {
			return err
		}
		out := *hdr
		out.Name = at(rel)
		if hdr.Typeflag == tar.TypeLink {
			out.Linkname = at(path.Clean(hdr.Linkname))
		}
		if hdr.Typeflag == tar.TypeRegA {
			out.Typeflag = tar.TypeReg
		}
		// Only the name and link are ours to give; extended records
		// could carry another path (PAX "path", "linkpath").
		out.PAXRecords, out.Format = nil, tar.FormatUnknown
		out.Xattrs = nil
		if err := tw.WriteHeader(&out); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

// placer remembers what an archive made so far.
type placer struct {
	symlinks Symlinks
	files    map[string]bool // names of regular files, hard-link targets
}

// check says where an entry goes relative to the destination, or refuses it.
func (p *placer) check(hdr *tar.Header) (string, error) {
	refuse := func(format string, args ...any) (string, error) {
		return "", &RefusedError{Entry: hdr.Name, Why: fmt.Sprintf(format, args...)}
	}
	rel, why := CleanName(hdr.Name)
	if why != "" {
		return refuse("%s", why)
	}
	if link := p.symlinks.Under(rel); link != "" {
		return refuse("it would be written through the archive's own symlink %q", link)
	}
	if p.symlinks[rel] {
		return refuse("it replaces the archive's own symlink")
	}
	// Whatever rel was, it is this entry now: a file replaced by a symlink
	// is no longer a file a hard link may name (the link would be to the
	// symlink, and written through).
	delete(p.files, rel)
	switch hdr.Typeflag {
	case tar.TypeDir:
	case tar.TypeReg, tar.TypeRegA:
		p.files[rel] = true
	case tar.TypeSymlink:
		if rel == Root {
			return refuse("the declared path itself would become a symlink")
		}
		if hdr.Linkname == "" {
			return refuse("a symlink to nothing")
		}
		p.symlinks[rel] = true
	case tar.TypeLink:
		target, why := CleanName(hdr.Linkname)
		switch {
		case why != "":
			return refuse("a hard link to %q: %s", hdr.Linkname, why)
		case !p.files[target]:
			return refuse("a hard link to %q, which is no file this archive wrote before", hdr.Linkname)
		case rel == Root:
			return refuse("the declared path itself would become a hard link")
		}
		p.files[rel] = true
	default:
		return refuse("%s, expected files, directories and links", Kind(hdr.Typeflag))
	}
	return rel, nil
}

// CleanName cleans an entry's name relative to where the archive goes,
// or says why it cannot be one (empty, a NUL byte, absolute, ".."): the
// check of every unpacker of a build's archives.
func CleanName(name string) (string, string) {
	switch {
	case name == "":
		return "", "an empty name"
	case strings.ContainsRune(name, 0):
		return "", "a name with a NUL byte"
	case path.IsAbs(name):
		return "", "an absolute name"
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", "a name with \"..\""
		}
	}
	return path.Clean(name), ""
}

// Symlinks are the names of the symlinks an archive made so far: an entry
// under one would be written through it.
type Symlinks map[string]bool

// Under is the symlink that rel's parents pass through, or "".
func (s Symlinks) Under(rel string) string {
	for dir := path.Dir(rel); dir != "." && dir != "/"; dir = path.Dir(dir) {
		if s[dir] {
			return dir
		}
	}
	return ""
}

// Kind says in words what an entry of type t is, for those that are no
// file, directory or link.
func Kind(t byte) string {
	switch t {
	case tar.TypeLink:
		return "a hard link"
	case tar.TypeChar:
		return "a character device"
	case tar.TypeBlock:
		return "a block device"
	case tar.TypeFifo:
		return "a fifo"
	}
	return fmt.Sprintf("an entry of type %q", t)
}

// IsRefused says whether err is an entry Place refused.
func IsRefused(err error) bool {
	var re *RefusedError
	return errors.As(err, &re)
}
