package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/testbinary"
)

// writeRepo makes a repository whose .monkeyci holds the given files.
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, ".monkeyci", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// monkeyci runs the real binary and returns its exit code and output.
func monkeyci(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(testbinary.Path(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

func assertNoStackTrace(t *testing.T, out string) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine ", ".go:"} {
		if strings.Contains(out, s) {
			t.Errorf("output has %q, like a stack trace:\n%s", s, out)
		}
	}
}

func TestBadInputExitsTwoNamingThePlace(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"misspelled key", map[string]string{"build.yaml": "id: a\nimage: busybox\nscirpt: [\"true\"]\n"},
			[]string{"build.yaml:3:", "scirpt", "script"}},
		{"cycle", map[string]string{"build.yaml": "- {id: a, image: x, script: [\"true\"], dependencies: [c]}\n- {id: b, image: x, script: [\"true\"], dependencies: [a]}\n- {id: c, image: x, script: [\"true\"], dependencies: [b]}\n"},
			[]string{"cycle", "a", "b", "c"}},
		{"wrong type in json", map[string]string{"build.json": "{\"id\": \"a\", \"image\": \"x\", \"script\": {\"no\": 1}}"},
			[]string{"build.json:1:", "script"}},
		{"no build file", map[string]string{}, []string{"no build file"}},
		{"zero cpus", map[string]string{"build.yaml": "id: a\nimage: x\nscript: [\"true\"]\ncpus: 0\n"},
			[]string{"build.yaml:4:7", "cpus: must be above 0"}},
		{"negative cpus", map[string]string{"build.edn": "{:id \"a\" :image \"x\" :script [\"true\"] :cpus -0.25}"},
			[]string{"build.edn:1:", "cpus: must be above 0"}},
		{"zero pids", map[string]string{"build.json": `{"id": "a", "image": "x", "script": ["true"], "pids": 0}`},
			[]string{"build.json:1:", "pids: must be at least 1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeRepo(t, tc.files)
			for _, command := range []string{"run", "verify"} {
				args := []string{"verify", dir}
				if command == "run" {
					args = []string{"run", "--state-dir", t.TempDir(), dir}
				}
				code, stdout, stderr := monkeyci(t, args...)
				if code != 2 {
					t.Errorf("%s: exit %d, want 2\n%s%s", command, code, stdout, stderr)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("%s: stderr does not name %q:\n%s", command, w, stderr)
					}
				}
				assertNoStackTrace(t, stdout+stderr)
			}
		})
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	for _, args := range [][]string{{"run", "--cpus", "0"}, {"run", "--memory", "lots"}, {"run", "--param", "novalue"}, {"run", "--no-such-flag"}, {"nonsense"}} {
		code, stdout, stderr := monkeyci(t, append(args, writeRepo(t, map[string]string{"build.yaml": "id: a\nimage: x\nscript: [\"true\"]\n"}))...)
		if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
			t.Errorf("%v: exit %d, want 2 with one line\n%s%s", args, code, stdout, stderr)
		}
	}
}

func TestVerifyPrintsTheGraph(t *testing.T) {
	dir := writeRepo(t, map[string]string{"build.yaml": "- {id: compile, image: x, script: [\"true\"]}\n- {id: test, image: x, script: [\"true\"], dependencies: [compile]}\n"})
	code, stdout, stderr := monkeyci(t, "verify", dir)
	if code != 0 || !strings.Contains(stdout, "compile") || !strings.Contains(stdout, "test") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestVerifyTakesAQuarterCPUAndPids(t *testing.T) {
	dir := writeRepo(t, map[string]string{"build.yaml": "id: lint\nimage: x\nscript: [\"true\"]\ncpus: 0.25\npids: 64\n"})
	code, stdout, stderr := monkeyci(t, "verify", dir)
	if code != 0 || !strings.Contains(stdout, "0.25 cpus") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestAgentRefusesABadPidsFlag(t *testing.T) {
	for _, pids := range []string{"0", "-1", "many"} {
		code, stdout, stderr := monkeyci(t, "agent", "--join-token", "x", "--tls=false", "--pids", pids)
		if code != 2 || !strings.Contains(stderr, "--pids") || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
			t.Errorf("--pids %s: exit %d, want 2 with one line naming --pids\n%s%s", pids, code, stdout, stderr)
		}
	}
}

func TestFailingBuildExitsOne(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	dir := writeRepo(t, map[string]string{"build.yaml": "- {id: ok, image: monkeyci/busybox:latest, script: [\"echo fine\"]}\n- {id: bad, image: monkeyci/busybox:latest, script: [\"true\", \"exit 7\"], dependencies: [ok]}\n- {id: after, image: monkeyci/busybox:latest, script: [\"true\"], dependencies: [bad]}\n"})
	code, stdout, stderr := monkeyci(t, "run", "--state-dir", t.TempDir(), dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"ok     | fine", "bad", "command 2 failed with exit code 7: exit 7", "after", "skipped"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestParamsReachJobsAsEnv(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	dir := writeRepo(t, map[string]string{"build.yaml": "id: greet\nimage: monkeyci/busybox:latest\nenv: {OWN: mine}\nscript: ['echo \"$GREETING $OWN\"']\n"})
	code, stdout, stderr := monkeyci(t, "run", "--state-dir", t.TempDir(), "--param", "GREETING=hello", "--param", "OWN=overridden", dir)
	if code != 0 || !strings.Contains(stdout, "| hello mine") {
		t.Fatalf("exit %d, want 0 and the param in the job's env\n%s%s", code, stdout, stderr)
	}
}

// TestInterruptRemovesEverything sends a real SIGINT to a running build and
// checks that nothing with the build's label is left on the engine.
func TestInterruptRemovesEverything(t *testing.T) {
	engine := dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	dir := writeRepo(t, map[string]string{"build.yaml": "- {id: a, image: monkeyci/busybox:latest, script: [\"sleep 300\"]}\n- {id: b, image: monkeyci/busybox:latest, script: [\"sleep 300\"]}\n"})
	cmd := exec.Command(testbinary.Path(t), "run", "--json", "--state-dir", t.TempDir(), dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	build := ""
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		var e struct{ Type, Build string }
		if json.Unmarshal(lines.Bytes(), &e) == nil && e.Type == "job/start" {
			build = e.Build
			break
		}
	}
	if build == "" {
		t.Fatalf("no job/start event; stderr:\n%s", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() { // keep the pipe drained
		for lines.Scan() {
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case <-waited:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("monkeyci did not exit within 2 minutes of SIGINT")
	}
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit %d after SIGINT, want 1", code)
	}
	labels := map[string]string{agent.LabelBuild: build}
	cs, _ := engine.ListContainers(context.Background(), labels)
	vs, _ := engine.ListVolumes(context.Background(), labels)
	ns, _ := engine.ListNetworks(context.Background(), labels)
	if len(cs)+len(vs)+len(ns) > 0 {
		t.Errorf("left behind: containers %v, volumes %v, networks %v", cs, vs, ns)
	}
}

// A flag a command does not know is named, with where its flags are.
func TestAnUnknownFlagSaysWhereTheFlagsAre(t *testing.T) {
	code, stdout, stderr := monkeyci(t, "trigger", "--url", "https://example.com/app.git")
	if code != 2 || !strings.Contains(stderr, "--url") || !strings.Contains(stderr, "monkeyci trigger --help") || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
		t.Errorf("exit %d, want 2 with one line naming --url and monkeyci trigger --help\n%s%s", code, stdout, stderr)
	}
}
