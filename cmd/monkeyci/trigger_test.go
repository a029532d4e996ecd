package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

func TestAdminCLITrigger(t *testing.T) {
	f := newFakeAdmin()
	addr := serveFake(t, f, nil)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := cli(t, plain(addr, "trigger", "--repo", "examples/hello", "--branch", "main", "--commit", "abc123",
		"--param", "env=staging", "--param", "x=a=b", "--label", "os=linux", "--priority", "high")...)
	if code != 0 || out != "b100\n" || errOut != "" {
		t.Errorf("trigger: exit %d, %q, %q", code, out, errOut)
	}
	assertRequests(t, f, "Trigger", &fleet.TriggerRequest{Url: filepath.Join(wd, "examples/hello"), Repo: "examples/hello", Branch: "main", Commit: "abc123",
		Params: map[string]string{"env": "staging", "x": "a=b"}, Labels: map[string]string{"os": "linux"}, Priority: "high"})

	f.reset()
	if code, out, _ := cli(t, plain(addr, "trigger", "--repo", "https://example.com/app.git")...); code != 0 || out != "b101\n" {
		t.Errorf("trigger a URL: exit %d, %q", code, out)
	}
	assertRequests(t, f, "Trigger", &fleet.TriggerRequest{Url: "https://example.com/app.git"})

	// --wait: the build's output, then how it ended, and exit like run
	f.reset()
	f.logs["b102"] = logChunks()
	code, out, errOut = cli(t, plain(addr, "trigger", "--repo", "/src/app", "--wait")...)
	want := "b102\nscript | checking out\ntest | ok 1\nbuild | warning\ntest | ok 2\ntest | no newline\nbuild b102 success in 1.5s\n"
	if code != 0 || out != want {
		t.Errorf("trigger --wait: exit %d, %q\n%s\nwant\n%s", code, errOut, out, want)
	}
	assertRequests(t, f, "Logs", &fleet.LogsRequest{Build: "b102", Follow: true, Attempt: 1})

	f.result = "failure"
	code, out, errOut = cli(t, plain(addr, "trigger", "--repo", "/src/app", "--wait")...)
	if code != 1 || !strings.HasPrefix(out, "b103\n") || !strings.HasSuffix(out, "\nbuild b103 failure in 1.5s: job test failed\n") || errOut != "" {
		t.Errorf("trigger --wait, failing: exit %d, %q\n%s", code, errOut, out)
	}

	f.reset()
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"trigger"}, "monkeyci: --repo is required\n"},
		{[]string{"trigger", "--repo", ".", "--param", "novalue"}, "monkeyci: --param \"novalue\": expected KEY=VALUE\n"},
		{[]string{"trigger", "--repo", ".", "--priority", "urgent"}, "monkeyci: --priority \"urgent\": say high, normal or low\n"},
		{[]string{"trigger", "--repo", ".", "--label", "=x"}, "monkeyci: --label \"=x\": expected KEY=VALUE\n"},
	} {
		if code, _, errOut := cli(t, plain(addr, c.args...)...); code != 2 || errOut != c.err {
			t.Errorf("%v: exit %d, %q", c.args, code, errOut)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("usage errors made calls: %v", f.calls)
	}

	f.reset()
	if code, _, errOut := cli(t, plain(addr, "trigger", "--repo", "https://example.com/app.git", "--tag", "v1.2.0")...); code != 0 {
		t.Errorf("trigger a tag: exit %d, %q", code, errOut)
	}
	assertRequests(t, f, "Trigger", &fleet.TriggerRequest{Url: "https://example.com/app.git", Tag: "v1.2.0"})
	assertTokens(t, f, "Bearer "+fakeToken)
}
