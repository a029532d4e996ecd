package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// meaning strips where jobs were written, keeping what they mean.
func meaning(p *Plan) []Job {
	out := make([]Job, len(p.Jobs))
	for i, j := range p.Jobs {
		j.Source, j.Pos = Position{}, nil
		out[i] = j
	}
	return out
}

func TestSameBuildInEveryFormat(t *testing.T) {
	var plans [][]Job
	for _, format := range []string{"yaml", "json", "edn"} {
		p, err := Load(filepath.Join("testdata/same", format))
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		plans = append(plans, meaning(p))
	}
	for i := 1; i < len(plans); i++ {
		if !reflect.DeepEqual(plans[0], plans[i]) {
			t.Errorf("format %d differs:\n%+v\n%+v", i, plans[0], plans[i])
		}
	}
	test := plans[0][0]
	if test.CPUs != 2 || test.Memory != 4<<30 || test.Env["CI"] != "true" || len(test.Caches) != 1 {
		t.Errorf("test job %+v", test)
	}
	publish := plans[0][1]
	if !publish.Blocked || publish.Memory != 512<<20 || publish.WorkDir != "sub" || publish.Dependencies[0] != "test" ||
		publish.When == nil || publish.When.Branch != "main" || len(publish.When.Changed) != 2 {
		t.Errorf("publish job %+v", publish)
	}
}

func TestLoadJoinsFilesInOrder(t *testing.T) {
	p, err := Load("testdata/multi")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range p.Jobs {
		got = append(got, j.ID+"@"+filepath.Base(j.Source.File))
	}
	want := []string{"job-1@build.yaml", "job-2@build.json", "job-3@build.edn"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestLoadWithoutBuildFile(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	want := "no build file in " + filepath.Join(dir, ".monkeyci") + " (expected build.yaml, build.yml, build.json or build.edn)"
	if err == nil || err.Error() != want || !errors.Is(err, ErrNoBuildFile) {
		t.Errorf("no .monkeyci: got %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, ".monkeyci"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".monkeyci", "build.clj"), []byte("(ns build)"), 0o644)
	if _, err := Load(dir); err == nil || err.Error() != want {
		t.Errorf("empty .monkeyci: got %v", err)
	}
}

func TestLoadReportsEveryFile(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, ".monkeyci")
	os.Mkdir(m, 0o755)
	os.WriteFile(filepath.Join(m, "build.yml"), []byte("image: a\nscript: x\nsize: 0\n"), 0o644)
	os.WriteFile(filepath.Join(m, "build.edn"), []byte(`{:image "a" :script "x" :cpu 2}`), 0o644)
	_, err := Load(dir)
	want := filepath.Join(m, "build.yml") + `:3:7: size: must be at least 1, got 0` + "\n" +
		filepath.Join(m, "build.edn") + `:1:25: unknown key "cpu" (did you mean "cpus"?)`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}

func TestLoadChecksAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, ".monkeyci")
	os.Mkdir(m, 0o755)
	os.WriteFile(filepath.Join(m, "build.yaml"), []byte("id: a\nimage: i\nscript: x\n"), 0o644)
	os.WriteFile(filepath.Join(m, "build.json"), []byte(`{"id": "a", "image": "i", "script": "x"}`), 0o644)
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "build.json:1:8: duplicate job id \"a\", first declared at "+filepath.Join(m, "build.yaml")+":1:5") {
		t.Errorf("got %v", err)
	}
}

func TestDescribe(t *testing.T) {
	p, err := Load("testdata/same/yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := "test     docker.io/maven:latest  2 cpus, 4 GB\n" +
		"publish  docker.io/maven:latest  1 cpu, 512 MB  after: test  when: branch main; changed src/**, pom.xml  (blocked)\n"
	if got := p.Describe(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestLoadRefusesFilesOutsideTheRepo(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret.yaml")
	os.WriteFile(outside, []byte("password: hunter2\n"), 0o644)
	dir := t.TempDir()
	m := filepath.Join(dir, ".monkeyci")
	os.Mkdir(m, 0o755)
	if err := os.Symlink(outside, filepath.Join(m, "build.yaml")); err != nil {
		t.Skip(err)
	}
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "links outside") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("link outside: got %v", err)
	}
	os.Remove(filepath.Join(m, "build.yaml"))
	os.Symlink("/dev/zero", filepath.Join(m, "build.yaml"))
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("device: got %v", err)
	}
	os.Remove(filepath.Join(m, "build.yaml"))
	os.WriteFile(filepath.Join(dir, "shared.yaml"), []byte("image: a\nscript: x\n"), 0o644)
	os.Symlink("../shared.yaml", filepath.Join(m, "build.yaml"))
	if p, err := Load(dir); err != nil || len(p.Jobs) != 1 || len(p.Files) != 1 {
		t.Errorf("link inside the repo: %v", err)
	}
}

func TestDescribeFractionalCPUs(t *testing.T) {
	jobs, err := Parse("b.yaml", []byte("id: lint\nimage: i\nscript: x\ncpus: 0.25\nmemory: 256m\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "lint  i  0.25 cpus, 256 MB\n"
	if got := (&Plan{Jobs: jobs}).Describe(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
