package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/internal/dockertest"
)

// repoRoot is the repository's root, from this file's place.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..")
}

func TestShScriptExampleRuns(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	dir := filepath.Join(repoRoot(t), "examples", "sh-script")
	runExample(t, []string{"--param", "greeting=hi there", dir}, "package | hi there", "files in the workspace", "lint", "test")
}

// runExample runs `monkeyci run` with args, which must succeed and print
// each of wants.
func runExample(t *testing.T, args []string, wants ...string) {
	t.Helper()
	code, stdout, stderr := monkeyci(t, append([]string{"run", "--state-dir", t.TempDir()}, args...)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range wants {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

// The Go example is built as its README says, into a copy of the example,
// and runs in the agent's minimal image.
func TestGoScriptExampleRuns(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	root := repoRoot(t)
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(root, "examples", "go-script", "hello.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, ".monkeyci", "build"), "./examples/go-script/ci")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the example: %v\n%s", err, out)
	}
	runExample(t, []string{dir}, "package | hello", "| 2 files in the workspace", "lint", "test")
}

func TestVerifyDescribesABuildScript(t *testing.T) {
	dir := writeRepo(t, map[string]string{"build.sh": "true\n", "script.yaml": "image: monkeyci/busybox:latest\ncpus: 0.5\nmemory: 512m\n"})
	code, stdout, stderr := monkeyci(t, "verify", dir)
	if want := "build script .monkeyci/build.sh, run in monkeyci/busybox:latest, 0.5 CPUs, 512 MB\n"; code != 0 || stdout != want {
		t.Errorf("exit %d, stdout %q, want %q\n%s", code, stdout, want, stderr)
	}
	dir = writeRepo(t, map[string]string{"build.sh": "true\n", "build.json": "{}", "script.yaml": "cpus: x\n"})
	code, _, stderr = monkeyci(t, "run", "--state-dir", t.TempDir(), dir)
	if code != 2 || !strings.Contains(stderr, "keep one or the other") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	dir = writeRepo(t, map[string]string{"build.sh": "true\n", "script.yaml": "cpus: x\n"})
	code, _, stderr = monkeyci(t, "verify", dir)
	if code != 2 || !strings.Contains(stderr, ".monkeyci/script.yaml:1:7: cpus: expected") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// MonkeyCI's own job forms, in each of the three formats, run as MonkeyCI
// runs them: a job of only id and image runs its image's own command.
func TestMonkeyCIFormsRun(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	dockertest.RequireImage(t, "monkeyci/hello:latest")
	for _, format := range []string{"yaml", "json", "edn"} {
		t.Run(format, func(t *testing.T) {
			dir := filepath.Join(repoRoot(t), "cmd", "monkeyci", "testdata", "monkeyci-forms", format)
			runExample(t, []string{dir}, "own-command | hello from the image's own command", "| typed container job", "| v1 image key",
				"✔ typed ", "✔ v1-image ")
		})
	}
}

// Build files from MonkeyCI's examples folder run unchanged; the images
// they name are made here from the local busybox (no registry is reached).
func TestMonkeyCIExamplesRunUnchanged(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	tagLocally(t, dockertest.Busybox, "docker.io/alpine:latest")
	dir := filepath.Join(repoRoot(t), "cmd", "monkeyci", "testdata", "monkeyci-examples", "yaml")
	runExample(t, []string{dir}, "list-job | total ", "list-job  success")
}

// The services example: two jobs fetch from a service by its name, and the
// service is stopped once they have ended, as on a fleet.
func TestServicesExampleRuns(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	dockertest.RequireImage(t, "monkeyci/httpd:latest")
	dir := filepath.Join(repoRoot(t), "examples", "services")
	runExample(t, []string{dir}, "fetch-one | hello from monkeyci/httpd", "fetch-two | hello from monkeyci/httpd",
		"serving on port 8080", "✔ web ")
}

// tagLocally makes ref name the local image src, unless an image of that
// name is present already; a tag it made is removed after the test.
func tagLocally(t *testing.T, src, ref string) {
	t.Helper()
	if exec.Command("docker", "image", "inspect", ref).Run() == nil {
		return
	}
	if out, err := exec.Command("docker", "tag", src, ref).CombinedOutput(); err != nil {
		t.Fatalf("docker tag %s %s: %v %s", src, ref, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", ref).Run() })
}
