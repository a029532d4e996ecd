package buildscript

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/pipeline"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       Config
	}{
		{"empty", "", Config{}},
		{"comments only", "# nothing\n", Config{}},
		{"image", "image: monkeyci/busybox:latest\n", Config{Image: "monkeyci/busybox:latest"}},
		{"all", "image: golang:1.26\ncpus: 0.5\nmemory: 512m\n", Config{Image: "golang:1.26", MilliCPUs: 500, Memory: 512 << 20}},
		{"bare memory is GB", "memory: 2\ncpus: 2\n", Config{MilliCPUs: 2000, Memory: 2 << 30}},
		{"without submodules", "submodules: false\n", Config{NoSubmodules: true}},
		{"with submodules", "submodules: true\n", Config{}},
		{"without LFS files", "lfs: false\n", Config{NoLFS: true}},
		{"deeper", "depth: 200\n", Config{Depth: 200}},
		{"the whole history", "depth: 0\n", Config{FullHistory: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseConfig(ConfigFile, []byte(tc.yaml))
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}

		})
	}
}

// A script.yaml that only leaves submodules out keeps the default script
// container.
func TestSubmodulesAloneAskNoContainer(t *testing.T) {
	got, err := ParseConfig(ConfigFile, []byte("submodules: false\n"))
	if err != nil || !got.IsZero() {
		t.Errorf("got %+v (zero: %v), %v; want a zero container config", got, got.IsZero(), err)
	}
	if got, _ := ParseConfig(ConfigFile, []byte("submodules: false\ncpus: 1\n")); got.IsZero() {
		t.Errorf("%+v is zero, want cpus to count", got)
	}
}

func TestParseConfigErrorsNameThePlace(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "image: a\nimgae: b\n", `.monkeyci/script.yaml:2:1: unknown key "imgae", expected one of image, cpus, memory, submodules, lfs, depth`},
		{"bad cpus", "cpus: many\n", ".monkeyci/script.yaml:1:7: cpus: expected a number of CPUs above 0 and at most 1024, like 1 or 0.5"},
		{"zero cpus", "cpus: 0\n", ".monkeyci/script.yaml:1:7: cpus: expected"},
		{"bad memory", "memory: lots\n", `.monkeyci/script.yaml:1:9: memory: invalid size "lots", expected a number of GB or a size like "512m", "2g" or "1.5GB"`},
		{"tiny memory", "memory: 1k\n", ".monkeyci/script.yaml:1:9: memory: 1k is too small, expected at least 6m"},
		{"image list", "image: [a]\n", ".monkeyci/script.yaml:1:8: image: expected an image reference"},
		{"bad image", "image: UPPER/Case\n", `.monkeyci/script.yaml:1:8: image: "UPPER/Case" is not an image reference`},
		{"not a mapping", "- image: a\n", ".monkeyci/script.yaml:1:1: expected a mapping of image, cpus, memory, submodules, lfs, depth"},
		{"depth negative", "depth: -1\n", ".monkeyci/script.yaml:1:8: depth: expected the commits of history to fetch, like 50, or 0 for all of it"},
		{"depth not a number", "depth: all\n", ".monkeyci/script.yaml:1:8: depth: expected the commits of history to fetch, like 50, or 0 for all of it"},
		{"submodules not a boolean", "submodules: \"no\"\n", ".monkeyci/script.yaml:1:13: submodules: expected true or false"},
		{"twice", "cpus: 1\ncpus: 2\n", ".monkeyci/script.yaml:2:1: cpus is given twice"},
		{"syntax", "image: a\n  b: [\n", ".monkeyci/script.yaml:2:3: invalid YAML: mapping values are not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(ConfigFile, []byte(tc.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			var pe *pipeline.Error
			if !errors.As(err, &pe) {
				t.Errorf("%T is not a *pipeline.Error", err)
			}
		})
	}
	_, err := ParseConfig(ConfigFile, []byte("cpus: x\nmemory: y\n"))
	if got := strings.Count(err.Error(), "\n"); got != 1 {
		t.Errorf("two problems should make two lines:\n%v", err)
	}
}

func TestLoadConfigWithoutFileIsZero(t *testing.T) {
	cfg, err := LoadConfig(t.TempDir())
	if err != nil || !cfg.IsZero() {
		t.Errorf("got %+v, %v", cfg, err)
	}
	dir := t.TempDir()
	write(t, dir, ConfigFile, "cpus: 3\n")
	if cfg, err := LoadConfig(dir); err != nil || cfg.MilliCPUs != 3000 {
		t.Errorf("got %+v, %v", cfg, err)
	}
}

// The agent reads script.yaml on its own host: a link inside the
// repository is followed, one that leads out of it (to a host file, or a
// .monkeyci that is a link to a host folder) is refused, saying so.
func TestLoadConfigFollowsNoLinkOutOfTheRepository(t *testing.T) {
	outside := t.TempDir()
	write(t, outside, "secret.yaml", "cpus: 7\n")
	write(t, outside, ".monkeyci/script.yaml", "cpus: 7\n")
	tests := []struct {
		name  string
		setup func(dir string)
		want  int64 // milli-CPUs read; 0: refused
	}{
		{"link inside", func(dir string) {
			write(t, dir, "conf/script.yaml", "cpus: 2\n")
			write(t, dir, ".monkeyci/build.sh", "true\n")
			symlink(t, "../conf/script.yaml", filepath.Join(dir, ConfigFile))
		}, 2000},
		{"link to a host file", func(dir string) {
			write(t, dir, ".monkeyci/build.sh", "true\n")
			symlink(t, filepath.Join(outside, "secret.yaml"), filepath.Join(dir, ConfigFile))
		}, 0},
		{"relative link out", func(dir string) {
			write(t, dir, ".monkeyci/build.sh", "true\n")
			rel, err := filepath.Rel(filepath.Join(dir, ".monkeyci"), filepath.Join(outside, "secret.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			symlink(t, rel, filepath.Join(dir, ConfigFile))
		}, 0},
		{".monkeyci a link to a host folder", func(dir string) {
			symlink(t, filepath.Join(outside, ".monkeyci"), filepath.Join(dir, ".monkeyci"))
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(dir)
			cfg, err := LoadConfig(dir)
			switch {
			case tc.want != 0 && (err != nil || cfg.MilliCPUs != tc.want):
				t.Errorf("got %+v, %v; want %d milli-CPUs", cfg, err, tc.want)
			case tc.want == 0 && (err == nil || !strings.Contains(err.Error(), "inside the repository")):
				t.Errorf("got %+v, %v; want a refusal naming the link", cfg, err)
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}
