package admin

import (
	"archive/tar"
	"bytes"
	"os"
	"strings"
	"testing"
)

func archiveOf(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(bytes.Repeat([]byte("x"), int(h.Size))); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// CheckArchive says what Unpack would refuse, and writes nothing: it has
// nowhere to write.
func TestCheckArchiveRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		hdrs []*tar.Header
		o    UnpackOptions
		why  string
	}{
		{"absolute", []*tar.Header{{Name: "/etc/x", Size: 1}}, UnpackOptions{}, `refused archive entry "/etc/x": an absolute name`},
		{"dot-dot", []*tar.Header{{Name: "a/../../x", Size: 1}}, UnpackOptions{}, `"a/../../x": a name with ".."`},
		{"empty", []*tar.Header{{Name: "", Size: 1}}, UnpackOptions{}, "an empty name"},
		{"one file, no name", []*tar.Header{{Name: ".", Size: 1}}, UnpackOptions{}, "no name is given for it"},
		{"symlink root", []*tar.Header{{Name: ".", Typeflag: tar.TypeSymlink, Linkname: "/"}}, UnpackOptions{}, "the directory itself would become a symlink"},
		{"bigger than the archive", []*tar.Header{{Name: "a", Size: 600}, {Name: "b", Size: 600}}, UnpackOptions{Limit: 1000}, `"b": its files are bigger than the archive (1000 bytes)`},
	} {
		err := CheckArchive(bytes.NewReader(archiveOf(t, c.hdrs...)), c.o)
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: %v, want %q", c.name, err, c.why)
		}
	}
	ok := archiveOf(t, &tar.Header{Name: "a", Size: 600}, &tar.Header{Name: ".", Size: 300})
	if err := CheckArchive(bytes.NewReader(ok), UnpackOptions{RootFile: "bin", Limit: 900}); err != nil {
		t.Errorf("files of 900 bytes within 900, the root file named: %v", err)
	}
}

// Unpack counts what it made, and what it skipped says so.
func TestUnpackCountsAndWarns(t *testing.T) {
	dir := t.TempDir()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	var warn bytes.Buffer
	done, err := Unpack(root, bytes.NewReader(archiveOf(t,
		&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o500},
		&tar.Header{Name: "d/f", Size: 3},
		&tar.Header{Name: "dev", Typeflag: tar.TypeChar},
		&tar.Header{Name: "d/l", Typeflag: tar.TypeSymlink, Linkname: "f"},
	)), UnpackOptions{Warn: &warn})
	want := Unpacked{Files: 1, Dirs: 1, Symlinks: 1, Skipped: 1, Bytes: 3}
	if err != nil || done != want {
		t.Fatalf("unpacked %+v, %v; want %+v", done, err, want)
	}
	if warn.String() != "monkeyci: skipped archive entry \"dev\": a character device, not a file, directory or symlink\n" {
		t.Errorf("warned %q", warn.String())
	}
	if got, err := root.ReadFile("d/l"); err != nil || string(got) != "xxx" {
		t.Errorf("d/l: %q, %v", got, err)
	}
}
