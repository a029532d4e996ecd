package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/coordinator/server"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// artifactCoordinator is a real coordinator in this process, a build it
// holds, its blob store (opened on the same folder as the coordinator's
// own) and a viewer token: reading artifacts is a viewer's right.
type artifactCoordinator struct {
	srv    *server.Server
	build  string
	blobs  blob.Store
	dir    string // the blob store's folder
	viewer string
}

func startArtifactCoordinator(t *testing.T) *artifactCoordinator {
	t.Helper()
	for _, env := range adminEnv {
		t.Setenv(env, "")
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dataDir := t.TempDir()
	srv, err := server.Start(ctx, server.Config{DataDir: dataDir, GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	b, err := srv.Coordinator.Trigger(ctx, coordinator.Build{Repo: "app", Source: coordinator.Source{URL: "/src/app", Branch: "main"}, Trigger: "test"})
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.Open(ctx, "", dataDir)
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := srv.Coordinator.AdminServer().CreateToken(ctx, &fleet.CreateTokenRequest{Kind: "viewer"})
	if err != nil {
		t.Fatal(err)
	}
	return &artifactCoordinator{srv: srv, build: b.ID, blobs: blobs, dir: filepath.Join(dataDir, "blobs"), viewer: viewer.GetToken()}
}

// put stores an artifact of the build, as an agent's upload would.
func (a *artifactCoordinator) put(t *testing.T, id string, archive []byte) {
	t.Helper()
	if _, err := a.blobs.Put(context.Background(), coordinator.ArtifactKey(a.build, id), bytes.NewReader(archive)); err != nil {
		t.Fatal(err)
	}
}

// cli runs monkeyci in this process with a viewer's client flags.
func (a *artifactCoordinator) cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return cli(t, append(args, "--server", a.srv.GRPCAddr, "--tls=false", "--token", a.viewer)...)
}

// entry is an archive entry: a directory (name ends in '/'), a symlink
// (link set), a file otherwise; typ overrides (a fifo, a hard link).
type entry struct {
	name, body, link string
	mode             int64
	typ              byte
}

func tarOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: e.typ, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		switch {
		case e.typ != 0:
		case strings.HasSuffix(e.name, "/"):
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag = tar.TypeSymlink
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// noise is n bytes no compressor shrinks: several of the stream's pieces.
func noise(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

func gunzip(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tree describes what is under dir, one line per path: "d name",
// "f name mode body" or "l name -> target".
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			out = append(out, "d "+rel)
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, "l "+rel+" -> "+target)
		default:
			body, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, "f "+rel+" "+fi.Mode().Perm().String()+" "+string(body))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sorted(out)
}

func TestArtifactsLsAndGetAgainstARealCoordinator(t *testing.T) {
	a := startArtifactCoordinator(t)
	app := noise(700 << 10)
	stored := tarOf(t, entry{name: "./"}, entry{name: "bin/", mode: 0o755}, entry{name: "bin/app", body: app, mode: 0o755},
		entry{name: "README", body: "read me\n"}, entry{name: "current", link: "bin/app"})
	a.put(t, "bin", stored)
	a.put(t, "notes.txt", tarOf(t, entry{name: ".", body: "one file\n"})) // saved from a file

	prefix := a.build[:8]
	code, out, errOut := a.cli(t, "artifacts", "ls", prefix)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 3 || strings.Join(strings.Fields(lines[0]), " ") != "ID SIZE SHA256 SAVED" ||
		!strings.HasPrefix(lines[1], "bin ") || !strings.Contains(lines[1], " 704KB ") || !strings.HasPrefix(lines[2], "notes.txt ") {
		t.Fatalf("artifacts ls: exit %d, %q\n%s", code, errOut, out)
	}
	code, out, _ = a.cli(t, "artifacts", "ls", prefix, "-o", "json")
	var listed struct {
		Build     string
		Artifacts []struct {
			ID     string
			Size   int64
			SHA256 string
		}
	}
	if err := json.Unmarshal([]byte(out), &listed); code != 0 || err != nil || listed.Build != a.build || len(listed.Artifacts) != 2 ||
		listed.Artifacts[0].Size != int64(len(stored)) || len(listed.Artifacts[0].SHA256) != 64 {
		t.Fatalf("artifacts ls -o json: exit %d, %v\n%s", code, err, out)
	}
	if !strings.HasPrefix(lines[1], "bin  ") || !strings.Contains(lines[1], listed.Artifacts[0].SHA256[:12]+" ") {
		t.Errorf("the table's SHA256 is not the digest's start %s:\n%s", listed.Artifacts[0].SHA256[:12], lines[1])
	}

	// By default ID.tar.gz in the current directory: the stored bytes gzipped.
	work := t.TempDir()
	t.Chdir(work)
	code, out, errOut = a.cli(t, "artifacts", "get", prefix, "bin")
	got, err := os.ReadFile(filepath.Join(work, "bin.tar.gz"))
	if code != 0 || out != "" || err != nil || !strings.HasPrefix(errOut, "wrote bin.tar.gz (") {
		t.Fatalf("artifacts get: exit %d, %v, %q, %q", code, err, out, errOut)
	}
	if !bytes.Equal(gunzip(t, got), stored) {
		t.Error("bin.tar.gz is not the stored archive gzipped")
	}
	if code, _, errOut := a.cli(t, "artifacts", "get", prefix, "bin", "-o", "plain.tar"); code != 0 {
		t.Fatalf("-o plain.tar: exit %d, %q", code, errOut)
	}
	if got, err := os.ReadFile("plain.tar"); err != nil || !bytes.Equal(got, stored) {
		t.Errorf("-o plain.tar is not the stored archive byte for byte (%v)", err)
	}
	code, out, _ = a.cli(t, "artifacts", "get", prefix, "bin", "-o", "-")
	if code != 0 || !bytes.Equal(gunzip(t, []byte(out)), stored) {
		t.Errorf("-o -: exit %d, not the stored archive gzipped", code)
	}
	if names := dirNames(t, work); !slices.Equal(names, []string{"bin.tar.gz", "plain.tar"}) {
		t.Errorf("the working directory holds %v, want the two downloads and nothing else", names)
	}

	code, _, errOut = a.cli(t, "artifacts", "get", prefix, "bin", "-x", "out/bin")
	want := []string{"l current -> bin/app", "f README -rw-r--r-- read me\n", "d bin", "f bin/app -rwxr-xr-x " + app}
	if got := tree(t, filepath.Join(work, "out/bin")); code != 0 || !slices.Equal(got, sorted(want)) {
		t.Errorf("-x out/bin: exit %d, %q; unpacked %d entries, want %d", code, errOut, len(got), len(want))
	}
	code, _, errOut = a.cli(t, "artifacts", "get", prefix, "notes.txt", "-x", "notes")
	if got := tree(t, filepath.Join(work, "notes")); code != 0 || !slices.Equal(got, []string{"f notes.txt -rw-r--r-- one file\n"}) {
		t.Errorf("-x of an artifact saved from a file: exit %d, %q, %q", code, errOut, got)
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// Refusals before any download, and the coordinator's, each in one line.
func TestArtifactsGetSaysWhatIsWrong(t *testing.T) {
	a := startArtifactCoordinator(t)
	a.put(t, "bin", tarOf(t, entry{name: "a", body: "a"}))
	t.Chdir(t.TempDir())
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"artifacts", "get", a.build, "../bin"}, 2, `monkeyci: artifact id "../bin": expected letters`},
		{[]string{"artifacts", "get", a.build, "bin", "-o", "x", "-x", "y"}, 2, "none of the others can be"},
		{[]string{"artifacts", "get", a.build, "bin", "-o", ""}, 2, "monkeyci: -o is empty"},
		{[]string{"artifacts", "get", a.build, "bin", "-o", "."}, 2, "monkeyci: -o . is a directory"},
		{[]string{"artifacts", "get", a.build}, 2, "accepts 2 arg(s)"},
		{[]string{"artifacts", "get", a.build, "nope"}, 1, "monkeyci: build " + a.build + " saved no artifact \"nope\""},
		{[]string{"artifacts", "get", "ffffffff", "bin"}, 1, "monkeyci: "},
		{[]string{"artifacts", "ls", "ffffffff"}, 1, "monkeyci: "},
	} {
		code, out, errOut := a.cli(t, c.args...)
		if code != c.code || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, c.want) && !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q, %q; want %d saying %q", c.args, code, out, errOut, c.code, c.want)
		}
	}
	if names := dirNames(t, "."); len(names) != 0 {
		t.Errorf("failed gets left %v", names)
	}
}

// A download whose bytes are not those the coordinator keeps the digest
// of fails saying so, and leaves no file: neither the archive nor the
// unpacked directory.
func TestArtifactsGetRefusesADamagedDownload(t *testing.T) {
	a := startArtifactCoordinator(t)
	stored := tarOf(t, entry{name: "a", body: noise(300 << 10)})
	a.put(t, "bin", stored)
	obj := filepath.Join(a.dir, "objects", filepath.FromSlash(coordinator.ArtifactKey(a.build, "bin")))
	damaged := bytes.Clone(stored)
	damaged[len(damaged)/2] ^= 0xff // same size, another digest
	if err := os.WriteFile(obj, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	t.Chdir(work)
	for _, args := range [][]string{{}, {"-o", "bin.tar"}, {"-x", "out"}} {
		code, _, errOut := a.cli(t, append([]string{"artifacts", "get", a.build, "bin"}, args...)...)
		if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "sha256") || !strings.Contains(errOut, "damaged") {
			t.Errorf("%v of a damaged artifact: exit %d, %q; want 1 saying the sha256 differs", args, code, errOut)
		}
	}
	if names := dirNames(t, work); len(names) != 0 {
		t.Errorf("damaged downloads left %v", names)
	}
}

// A hostile archive is refused whole before a byte is written, or written
// only under DIR: nothing appears outside it, through a name, an absolute
// path, a symlink the archive made or one DIR held already.
func TestArtifactsGetUnpacksHostileArchivesOnlyUnderDir(t *testing.T) {
	a := startArtifactCoordinator(t)
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "dir")
	refused := []struct {
		id      string
		entries []entry
		why     string
	}{
		{"escape", []entry{{name: "ok", body: "ok"}, {name: "../escape", body: "x"}}, `refused archive entry "../escape": a name with ".."`},
		{"deep", []entry{{name: "a/b/../../../outside/x", body: "x"}}, `a name with ".."`},
		{"absolute", []entry{{name: filepath.Join(outside, "abs"), body: "x"}}, "an absolute name"},
		{"etc", []entry{{name: "/etc/monkeyci-artifact-test", body: "x"}}, "an absolute name"},
		{"through", []entry{{name: "link", link: outside}, {name: "link/pwned", body: "x"}}, `written through the archive's own symlink "link"`},
		{"relative", []entry{{name: "up", link: "../outside"}, {name: "up/pwned", body: "x"}}, "written through the archive's own symlink"},
		{"replace", []entry{{name: "link", link: outside}, {name: "link/", mode: 0o755}}, "replaces the archive's own symlink"},
	}
	for _, c := range refused {
		a.put(t, c.id, tarOf(t, c.entries...))
		code, out, errOut := a.cli(t, "artifacts", "get", a.build, c.id, "-x", dir)
		if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.why) || !strings.Contains(errOut, "nothing was unpacked") {
			t.Errorf("%s: exit %d, %q; want 1 saying %q", c.id, code, errOut, c.why)
		}
		if names := dirNames(t, base); !slices.Equal(names, []string{"outside"}) {
			t.Fatalf("%s: %s holds %v, want only outside: DIR made or something beside it", c.id, base, names)
		}
	}

	// Allowed: a symlink pointing out is made as it is, and never followed;
	// a fifo and a hard link are skipped with a warning.
	a.put(t, "links", tarOf(t, entry{name: "link", link: outside}, entry{name: "fifo", typ: tar.TypeFifo},
		entry{name: "f", body: "f"}, entry{name: "hard", link: "f", typ: tar.TypeLink}))
	code, _, errOut := a.cli(t, "artifacts", "get", a.build, "links", "-x", dir)
	if code != 0 || !strings.Contains(errOut, `skipped archive entry "fifo": a fifo`) || !strings.Contains(errOut, `skipped archive entry "hard": a hard link`) ||
		!strings.Contains(errOut, "unpacked links into "+dir+" (1 file, 1B)") {
		t.Errorf("links: exit %d, %q", code, errOut)
	}
	if got := tree(t, dir); !slices.Equal(got, []string{"f f -rw-r--r-- f", "l link -> " + outside}) {
		t.Errorf("links unpacked as %q", got)
	}
	// DIR now holds a symlink out that this archive did not make: the
	// write through it is refused by the root, and what replaces it is
	// written in DIR.
	a.put(t, "later", tarOf(t, entry{name: "link/pwned", body: "x"}))
	if code, _, errOut := a.cli(t, "artifacts", "get", a.build, "later", "-x", dir); code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, `refused archive entry "link/pwned": it would be written through the symlink "link", which was there before`) {
		t.Errorf("a write through DIR's own symlink out: exit %d, %q; want 1 naming the entry", code, errOut)
	}
	a.put(t, "over", tarOf(t, entry{name: "link", body: "a file now"}))
	if code, _, errOut := a.cli(t, "artifacts", "get", a.build, "over", "-x", dir); code != 0 {
		t.Errorf("a file over DIR's symlink: exit %d, %q", code, errOut)
	}
	if got := tree(t, outside); len(got) != 0 {
		t.Errorf("written outside DIR: %q", got)
	}
	if _, err := os.Lstat("/etc/monkeyci-artifact-test"); err == nil {
		t.Error("/etc/monkeyci-artifact-test was written")
	}
	if got := tree(t, dir); !slices.Equal(got, []string{"f f -rw-r--r-- f", "f link -rw-r--r-- a file now"}) {
		t.Errorf("DIR holds %q", got)
	}
}
