package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// interleaved writes stdout and stderr in turn, each write well apart (the
// agent reads two files on their notifications: the order it can keep is
// the order it noticed the writes in). A second command follows.
const interleaved = `id: talk
image: monkeyci/busybox:latest
script:
  - "echo out1; sleep 0.5; echo err1 >&2; sleep 0.5; echo out2; sleep 0.5; echo err2 >&2"
  - "echo second"
`

// monkeyci logs keeps the order in which a command wrote its stdout and
// stderr, and shows each command, numbered from 1, with its text: a real
// coordinator and agent, a real container, the CLI as a person runs it.
func TestLogsKeepTheOrderOfStdoutAndStderrAndNameEachCommand(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	c := startCoordinator(t, t.TempDir(), 20*time.Second)
	api := c.adminClient(t)
	startAgentProcess(t, c, "logorder-a1")
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": interleaved})
	b, err := api.Trigger(context.Background(), &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	flags := []string{"--server", c.addr, "--ca", c.ca, "--token", c.admin}
	type ran struct {
		code        int
		out, errOut string
	}
	// One follows the build as it runs, one reads it once it has ended.
	followed := make(chan ran, 1)
	go func() {
		code, out, errOut := cli(t, append([]string{"logs", "-f", b.GetId()}, flags...)...)
		followed <- ran{code, out, errOut}
	}()
	ended := waitBuild(t, api, b.GetId(), 2*time.Minute, "ended", func(b *fleet.BuildInfo) bool { return b.GetState() == "ended" })
	if ended.GetResult() != "success" {
		t.Fatalf("build ended %s: %s", ended.GetResult(), ended.GetMessage())
	}
	want := []string{
		`#1 $ echo out1; sleep 0.5; echo err1 >&2; sleep 0.5; echo out2; sleep 0.5; echo err2 >&2`,
		"out1", "err1", "out2", "err2",
		"#2 $ echo second", "second",
	}
	check := func(what string, r ran) {
		t.Helper()
		var talk []string
		for _, l := range strings.Split(r.out, "\n") {
			if rest, ok := strings.CutPrefix(l, "talk | "); ok {
				talk = append(talk, rest)
			}
		}
		if r.code != 0 || strings.Join(talk, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: exit %d, %q; talk's lines:\n%s\nwant\n%s\nall of it:\n%s", what, r.code, r.errOut, strings.Join(talk, "\n"), strings.Join(want, "\n"), r.out)
		}
	}
	code, out, errOut := cli(t, append([]string{"logs", b.GetId()}, flags...)...)
	check("logs", ran{code, out, errOut})
	select {
	case r := <-followed:
		check("logs -f", r)
	case <-time.After(time.Minute):
		t.Fatal("logs -f did not end within a minute of the build")
	}

	// One job's output, raw, in the same order.
	code, out, errOut = cli(t, append([]string{"logs", b.GetId(), "talk"}, flags...)...)
	if raw := strings.Join(want, "\n") + "\n"; code != 0 || out != raw {
		t.Errorf("logs JOB: exit %d, %q\n%s\nwant\n%s", code, errOut, out, raw)
	}
}
