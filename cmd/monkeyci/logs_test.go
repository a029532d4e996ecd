package main

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

func logChunks() []*fleet.LogsChunk {
	return []*fleet.LogsChunk{
		{Job: "", Stream: "out", Offset: 0, Data: []byte("checking out\n")},
		{Job: "test", Stream: "out", Offset: 0, Data: []byte("ok 1\nok")},
		{Job: "build", Stream: "err", Offset: 0, Data: []byte("warning\n")},
		{Job: "test", Stream: "out", Offset: 7, Data: []byte(" 2\nno newline")},
	}
}

func TestAdminCLILogs(t *testing.T) {
	f := newFakeAdmin()
	f.builds["b1"] = &fleet.BuildInfo{Id: "b1", State: "ended", Result: "success", Attempt: 2}
	f.builds["b2"] = &fleet.BuildInfo{Id: "b2", State: "running", Attempt: 1, Started: timestamppb.New(time.Now())}
	f.builds["b3"] = &fleet.BuildInfo{Id: "b3", State: "queued", Waiting: "no agent has os=windows"}
	f.logs["b1"] = logChunks()
	f.logs["b2"] = logChunks()
	addr := serveFake(t, f, nil)

	code, out, errOut := cli(t, plain(addr, "logs", "b1")...)
	want := "script | checking out\ntest | ok 1\nbuild | warning\ntest | ok 2\ntest | no newline\n"
	if code != 0 || out != want || errOut != "" {
		t.Errorf("logs: exit %d, %q\n%s\nwant\n%s", code, errOut, out, want)
	}
	assertRequests(t, f, "Logs", &fleet.LogsRequest{Build: "b1", Attempt: 2})

	f.reset()
	code, out, _ = cli(t, plain(addr, "logs", "b1", "test")...)
	if code != 0 || out != "ok 1\nok 2\nno newline" {
		t.Errorf("logs JOB: exit %d, %q", code, out)
	}
	assertRequests(t, f, "Logs", &fleet.LogsRequest{Build: "b1", Job: "test", Attempt: 2})

	// -f follows a running build until it ends (the fake ends it)
	f.reset()
	code, out, _ = cli(t, plain(addr, "logs", "-f", "b2")...)
	if code != 0 || out != want {
		t.Errorf("logs -f: exit %d\n%s", code, out)
	}
	assertRequests(t, f, "Logs", &fleet.LogsRequest{Build: "b2", Follow: true, Attempt: 1})

	code, out, errOut = cli(t, plain(addr, "logs", "b3")...)
	if code != 0 || out != "" || errOut != "monkeyci: build b3 has not run: it is queued (no agent has os=windows)\n" {
		t.Errorf("logs of a queued build: exit %d, %q, %q", code, out, errOut)
	}
	code, _, errOut = cli(t, plain(addr, "logs", "nope")...)
	if code != 1 || errOut != "monkeyci: build \"nope\": not found\n" {
		t.Errorf("logs of an unknown build: exit %d, %q", code, errOut)
	}
	if code, _, _ := cli(t, plain(addr, "logs")...); code != 2 {
		t.Errorf("logs without a build: exit %d", code)
	}
	assertTokens(t, f, "Bearer "+fakeToken)
}
