package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/admin"
	sdk "github.com/monkeyci/monkeyci/sdk"
)

func TestJobRunFlagsMakeTheJob(t *testing.T) {
	f := jobRunFlags{
		image: "busybox", deps: []string{"a", "b"}, env: []string{"A=1", "B=x=y", "EMPTY="},
		saveArtifacts: []string{"bin:out/bin"}, restoreArtifacts: []string{"src:/opt/src", "01a24e1c793c42484c103a66:bin:out", "x:a:b"}, caches: []string{"deps:C:/odd:path"},
		cpus: 0.25, pids: 64, memory: "512m", timeout: time.Minute,
	}
	got, err := f.job("build", []string{"make", "make test"})
	if err != nil {
		t.Fatal(err)
	}
	want := sdk.Job{
		ID: "build", Image: "busybox", Script: []string{"make", "make test"}, Deps: []string{"a", "b"},
		Env:              map[string]string{"A": "1", "B": "x=y", "EMPTY": ""},
		SaveArtifacts:    []sdk.Artifact{{ID: "bin", Path: "out/bin"}},
		RestoreArtifacts: []sdk.Artifact{{ID: "src", Path: "/opt/src"}, {ID: "bin", Path: "out", Build: "01a24e1c793c42484c103a66"}, {ID: "x", Path: "a:b"}},
		Caches:           []sdk.Artifact{{ID: "deps", Path: "C:/odd:path"}},
		CPUs:             0.25, Pids: 64, Memory: 512 << 20, Timeout: time.Minute,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// Mistakes in a job command's arguments are said in one line, exit 2, and
// nothing is asked of the job API (none runs here).
func TestJobCommandUsageErrorsAreOneLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"job", "run", "x", "--image", "i", "--env", "FOO", "--", "true"}, `--env "FOO": expected KEY=VALUE`},
		{[]string{"job", "run", "x", "--image", "i", "--env", "=v", "--", "true"}, `--env "=v": expected KEY=VALUE`},
		{[]string{"job", "run", "x", "--image", "i", "--save-artifact", "bin", "--", "true"}, `--save-artifact "bin": expected ID:PATH, like bin:target/`},
		{[]string{"job", "run", "x", "--image", "i", "--restore-artifact", ":p", "--", "true"}, `--restore-artifact ":p": expected ID:PATH`},
		{[]string{"job", "run", "x", "--image", "i", "--cache", "c:", "--", "true"}, `--cache "c:": expected ID:PATH`},
		{[]string{"job", "run", "x", "--image", "i", "--memory", "lots", "--", "true"}, `--memory: invalid size "lots", expected a number of GB or a size like "512m", "2g" or "1.5GB"`},
		{[]string{"job", "run", "x", "--image", "i", "--cpus", "-1", "--", "true"}, `--cpus -1: expected a number of CPUs above 0, like 1 or 0.25`},
		{[]string{"job", "run", "x", "--image", "i", "--pids", "-1", "--", "true"}, `--pids -1: expected a number of processes of at least 1`},
		{[]string{"job", "run", "x", "--", "true"}, `--image is required`},
		{[]string{"job", "run", "x", "--image", "i", "echo", "hi"}, `expected one ID, then -- and the LINEs`},
		{[]string{"job", "run", "--image", "i", "--", "true"}, `expected the ID first`},
		{[]string{"job", "action", "x"}, `expected a command after --`},
		{[]string{"job", "status", "-o", "yaml"}, `yaml`},
		{[]string{"job", "wait"}, `requires at least 1 arg`},
		{[]string{"param", "get"}, `accepts 1 arg`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Setenv("MONKEYCI_API", "unix:///nonexistent/job.sock")
			t.Setenv("MONKEYCI_TOKEN", "t")
			var stdout, stderr bytes.Buffer
			code := execute(tc.args, &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			got := stderr.String()
			if !strings.Contains(got, tc.want) || strings.Count(got, "\n") != 1 {
				t.Errorf("stderr %q, want one line saying %q", got, tc.want)
			}
		})
	}
}

func TestJobCommandsOutsideABuildSaySo(t *testing.T) {
	t.Setenv("MONKEYCI_API", "")
	t.Setenv("MONKEYCI_TOKEN", "")
	var stdout, stderr bytes.Buffer
	code := execute([]string{"job", "wait", "a"}, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "is this running in a build's script container?") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

func TestJobStatusJSON(t *testing.T) {
	var b bytes.Buffer
	jsonOutput := &outputFlag{format: admin.FormatJSON}
	err := jsonOutput.print(&b, statusesJSON([]sdk.Status{
		{ID: "a", State: sdk.Success, Duration: 1500 * time.Millisecond},
		{ID: "b", State: sdk.Running, Deps: []string{"a"}, Duration: time.Second},
		{ID: "c", State: sdk.Failure, Exit: 2, Message: "script line 0 failed with exit code 2", Action: true},
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `[
  {
    "id": "a",
    "state": "success",
    "exit": 0,
    "deps": [],
    "duration-ms": 1500
  },
  {
    "id": "b",
    "state": "running",
    "deps": [
      "a"
    ],
    "duration-ms": 1000
  },
  {
    "id": "c",
    "state": "failure",
    "exit": 2,
    "message": "script line 0 failed with exit code 2",
    "deps": [],
    "duration-ms": 0,
    "action": true
  }
]
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
