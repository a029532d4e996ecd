package archive

import (
	"archive/tar"
	"bytes"
	"io"
	"path"
	"reflect"
	"strings"
	"testing"
)

// entry is one tar entry of a test: name, kind, link target, body.
type entry struct {
	name string
	typ  byte
	link string
	body string
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readTar(t testing.TB, data []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		out = append(out, entry{hdr.Name, hdr.Typeflag, hdr.Linkname, string(body)})
	}
}

func TestRelative(t *testing.T) {
	in := makeTar(t,
		entry{name: "node_modules/", typ: tar.TypeDir},
		entry{name: "node_modules/a.js", typ: tar.TypeReg, body: "a"},
		entry{name: "node_modules/b.js", typ: tar.TypeLink, link: "node_modules/a.js"},
		entry{name: "node_modules/c", typ: tar.TypeSymlink, link: "/usr/bin"},
	)
	var out bytes.Buffer
	if err := Relative(&out, bytes.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	want := []entry{
		{".", tar.TypeDir, "", ""},
		{"a.js", tar.TypeReg, "", "a"},
		{"b.js", tar.TypeLink, "a.js", ""},
		{"c", tar.TypeSymlink, "/usr/bin", ""}, // a symlink's target is its own
	}
	if got := readTar(t, out.Bytes()); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestSaveThenPlace: a file saved from one path is placed at another.
func TestSaveThenPlace(t *testing.T) {
	in := makeTar(t, entry{name: "app", typ: tar.TypeReg, body: "bin"})
	var rel, out bytes.Buffer
	if err := Relative(&rel, bytes.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	if err := Place(&out, &rel, "/workspace/other"); err != nil {
		t.Fatal(err)
	}
	want := []entry{{"workspace/other", tar.TypeReg, "", "bin"}}
	if got := readTar(t, out.Bytes()); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestPlace(t *testing.T) {
	const dest = "/workspace/node_modules"
	dir := entry{name: ".", typ: tar.TypeDir}
	for _, tc := range []struct {
		name    string
		entries []entry
		want    []entry // placed entries when accepted
		refused string  // the refused entry's name, "" when accepted
		why     string
	}{
		{
			name: "files and dirs land under dest",
			entries: []entry{dir, {name: "a", typ: tar.TypeDir}, {name: "./a/x.js", typ: tar.TypeReg, body: "x"},
				{name: "y", typ: tar.TypeLink, link: "a/x.js"}, {name: "up", typ: tar.TypeSymlink, link: "/usr/local/bin"}},
			want: []entry{{dest[1:], tar.TypeDir, "", ""}, {dest[1:] + "/a", tar.TypeDir, "", ""},
				{dest[1:] + "/a/x.js", tar.TypeReg, "", "x"}, {dest[1:] + "/y", tar.TypeLink, dest[1:] + "/a/x.js", ""},
				{dest[1:] + "/up", tar.TypeSymlink, "/usr/local/bin", ""}},
		},
		{name: "absolute name", entries: []entry{{name: "/usr/local/bin/sh", typ: tar.TypeReg, body: "evil"}},
			refused: "/usr/local/bin/sh", why: "absolute"},
		{name: "dot dot", entries: []entry{dir, {name: "../../../usr/local/bin/sh", typ: tar.TypeReg}},
			refused: "../../../usr/local/bin/sh", why: `".."`},
		{name: "dot dot that comes back", entries: []entry{{name: "a/../b", typ: tar.TypeReg}},
			refused: "a/../b", why: `".."`},
		{name: "through own symlink", entries: []entry{{name: "bin", typ: tar.TypeSymlink, link: "/usr/local/bin"},
			{name: "bin/sh", typ: tar.TypeReg, body: "evil"}}, refused: "bin/sh", why: `symlink "bin"`},
		{name: "deep through own symlink", entries: []entry{{name: "a", typ: tar.TypeSymlink, link: "../../"},
			{name: "a/b/c/d", typ: tar.TypeReg}}, refused: "a/b/c/d", why: `symlink "a"`},
		{name: "symlink replaced", entries: []entry{{name: "a", typ: tar.TypeSymlink, link: "/etc"},
			{name: "a", typ: tar.TypeDir}}, refused: "a", why: "replaces"},
		{name: "dest itself a symlink", entries: []entry{{name: ".", typ: tar.TypeSymlink, link: "/usr/local/bin"}},
			refused: ".", why: "itself"},
		{name: "hard link outside", entries: []entry{{name: "passwd", typ: tar.TypeLink, link: "/etc/passwd"}},
			refused: "passwd", why: "absolute"},
		{name: "hard link up", entries: []entry{{name: "passwd", typ: tar.TypeLink, link: "../../etc/passwd"}},
			refused: "passwd", why: `".."`},
		{name: "hard link to a file not in the archive", entries: []entry{{name: "sh", typ: tar.TypeLink, link: "bin/sh"}},
			refused: "sh", why: "no file this archive wrote"},
		{name: "hard link through own symlink", entries: []entry{{name: "b", typ: tar.TypeSymlink, link: "/bin"},
			{name: "sh", typ: tar.TypeLink, link: "b/sh"}}, refused: "sh", why: "no file this archive wrote"},
		{name: "hard link to a file the archive then made a symlink", entries: []entry{{name: "a", typ: tar.TypeReg, body: "x"},
			{name: "a", typ: tar.TypeSymlink, link: "/etc"}, {name: "b", typ: tar.TypeLink, link: "a"}, {name: "b/evil", typ: tar.TypeReg}},
			refused: "b", why: "no file this archive wrote"},
		{name: "char device", entries: []entry{{name: "null", typ: tar.TypeChar}}, refused: "null", why: "character device"},
		{name: "block device", entries: []entry{{name: "sda", typ: tar.TypeBlock}}, refused: "sda", why: "block device"},
		{name: "fifo", entries: []entry{{name: "p", typ: tar.TypeFifo}}, refused: "p", why: "fifo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Place(&out, bytes.NewReader(makeTar(t, tc.entries...)), dest)
			if tc.refused == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := readTar(t, out.Bytes()); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %+v, want %+v", got, tc.want)
				}
				return
			}
			re, ok := err.(*RefusedError)
			if !ok || re.Entry != tc.refused || !strings.Contains(re.Why, tc.why) {
				t.Fatalf("got %v, want entry %q refused saying %q", err, tc.refused, tc.why)
			}
			if !IsRefused(err) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line, IsRefused", err)
			}
		})
	}
}

// FuzzPlace: whatever the archive, Place does not panic and writes only
// under dest, never under a symlink it wrote, and links only inside dest.
func FuzzPlace(f *testing.F) {
	f.Add(makeTar(f, entry{name: ".", typ: tar.TypeDir}, entry{name: "a", typ: tar.TypeReg, body: "x"}))
	f.Add(makeTar(f, entry{name: "l", typ: tar.TypeSymlink, link: "/"}, entry{name: "l/x", typ: tar.TypeReg}))
	f.Add(makeTar(f, entry{name: "a", typ: tar.TypeReg}, entry{name: "b", typ: tar.TypeLink, link: "a"}))
	f.Add(makeTar(f, entry{name: "../x", typ: tar.TypeReg}))
	f.Add([]byte("not a tar"))
	const dest = "/workspace/cache"
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		_ = Place(&out, bytes.NewReader(data), dest)
		symlinks := map[string]bool{}
		tr := tar.NewReader(&out)
		for {
			hdr, err := tr.Next()
			if err != nil {
				return // what was written before a refusal is a cut-off stream
			}
			inside := func(name string) bool {
				return name == dest[1:] || strings.HasPrefix(name, dest[1:]+"/") && !strings.Contains(name, "..")
			}
			if !inside(hdr.Name) {
				t.Fatalf("entry %q outside %s", hdr.Name, dest)
			}
			for dir := path.Dir(hdr.Name); dir != "."; dir = path.Dir(dir) {
				if symlinks[dir] {
					t.Fatalf("entry %q under the archive's symlink %q", hdr.Name, dir)
				}
			}
			switch hdr.Typeflag {
			case tar.TypeSymlink:
				symlinks[hdr.Name] = true
			case tar.TypeLink:
				if !inside(hdr.Linkname) {
					t.Fatalf("hard link %q to %q outside %s", hdr.Name, hdr.Linkname, dest)
				}
			case tar.TypeReg, tar.TypeDir:
			default:
				t.Fatalf("entry %q of type %q placed", hdr.Name, hdr.Typeflag)
			}
		}
	})
}
