package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

func TestAdminCLIBuilds(t *testing.T) {
	f := newFakeAdmin()
	created := time.Now().Add(-3 * time.Minute)
	f.builds["b1"] = &fleet.BuildInfo{Id: "b1", Repo: "/src/app", Url: "/src/app", Branch: "main", Commit: "0123456789abcdef", State: "ended",
		Result: "failure", Message: "job test failed", Attempt: 2, Agent: "a1", Created: timestamppb.New(created),
		Started: timestamppb.New(created.Add(time.Second)), Ended: timestamppb.New(created.Add(5 * time.Second))}
	f.builds["b2"] = &fleet.BuildInfo{Id: "b2", Repo: "r", State: "running", Attempt: 1, Agent: "a1", Created: timestamppb.New(created)}
	f.events["b1"] = []*fleet.StoredEvent{
		{Attempt: 2, Seq: 7, Event: []byte(`{"type":"job/end","time":"2026-03-01T11:59:30.5Z","job":"test","status":"failure","exit":3,"message":"it broke"}`)},
	}
	addr := serveFake(t, f, nil)

	code, out, errOut := cli(t, plain(addr, "builds", "ls", "--repo", "/src/app", "--state", "ended", "--branch", "main", "--limit", "5")...)
	lines := strings.Split(out, "\n")
	if code != 0 || len(lines) != 4 ||
		strings.Join(strings.Fields(lines[0]), " ") != "ID REPO BRANCH COMMIT STATE RESULT ATTEMPT AGENT AGE DURATION" ||
		strings.Join(strings.Fields(lines[1]), " ") != "b1 /src/app main 0123456789ab ended failure 2 a1 3m 4s" ||
		strings.Join(strings.Fields(lines[2]), " ") != "b2 r - - running - 1 a1 3m -" {
		t.Errorf("builds ls: exit %d, %q\n%s", code, errOut, out)
	}
	assertRequests(t, f, "ListBuilds", &fleet.ListBuildsRequest{Repo: "/src/app", State: "ended", Branch: "main", Limit: 5})

	f.reset()
	code, out, _ = cli(t, plain(addr, "builds", "ls", "-o", "json")...)
	var builds []map[string]any
	if err := json.Unmarshal([]byte(out), &builds); code != 0 || err != nil || len(builds) != 2 || builds[0]["result"] != "failure" || builds[1]["ended"] != nil {
		t.Errorf("builds ls -o json: exit %d, %v\n%s", code, err, out)
	}
	assertRequests(t, f, "ListBuilds", &fleet.ListBuildsRequest{Limit: 50})

	code, out, _ = cli(t, plain(addr, "builds", "show", "b1")...)
	for _, want := range []string{"id:        b1\n", "result:    failure\n", "waiting:   -\n", "message:   job test failed\n", "duration:  4s\n",
		"TIME", "job/end  test  failure  it broke (exit 3)\n"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("builds show: exit %d, no %q in\n%s", code, want, out)
		}
	}
	code, out, _ = cli(t, plain(addr, "builds", "show", "b1", "-o", "json")...)
	var detail struct {
		ID     string `json:"id"`
		Events []struct {
			Seq   int            `json:"seq"`
			Event map[string]any `json:"event"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &detail); code != 0 || err != nil || detail.ID != "b1" || len(detail.Events) != 1 || detail.Events[0].Event["job"] != "test" {
		t.Errorf("builds show -o json: exit %d, %v\n%s", code, err, out)
	}
	code, out, errOut = cli(t, plain(addr, "builds", "show", "nope")...)
	if code != 1 || out != "" || errOut != "monkeyci: build \"nope\": not found\n" {
		t.Errorf("unknown build: exit %d, %q, %q", code, out, errOut)
	}

	f.reset()
	if code, out, errOut := cli(t, plain(addr, "builds", "cancel", "b2")...); code != 0 || out != "build b2 is ended (canceled)\n" {
		t.Errorf("cancel: exit %d, %q, %q", code, out, errOut)
	}
	if code, _, errOut := cli(t, plain(addr, "builds", "cancel", "b2")...); code != 1 || errOut != "monkeyci: build b2: the build has already ended\n" {
		t.Errorf("cancel again: exit %d, %q", code, errOut)
	}
	assertRequests(t, f, "CancelBuild", &fleet.BuildRef{Id: "b2"}, &fleet.BuildRef{Id: "b2"})
	if code, out, errOut := cli(t, plain(addr, "builds", "retry", "b2", "-o", "json")...); code != 0 || !strings.Contains(out, `"state": "queued"`) {
		t.Errorf("retry: exit %d, %q, %q", code, out, errOut)
	}
	assertRequests(t, f, "RetryBuild", &fleet.BuildRef{Id: "b2"})

	f.reset()
	for _, args := range [][]string{{"builds", "ls", "--state", "done"}, {"builds", "ls", "--limit", "-1"}, {"builds", "show"}, {"builds", "cancel", "a", "b"}} {
		if code, _, errOut := cli(t, plain(addr, args...)...); code != 2 {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("usage errors made calls: %v", f.calls)
	}
	assertTokens(t, f, "Bearer "+fakeToken)
}

func TestAdminCLIBuildsUnblock(t *testing.T) {
	f := newFakeAdmin()
	f.builds["b1"] = &fleet.BuildInfo{Id: "b1", Repo: "r", State: "ended", Result: "success", Created: timestamppb.Now()}
	f.builds["b2"] = &fleet.BuildInfo{Id: "b2", Repo: "r", State: "running", Attempt: 1, Agent: "a1", Created: timestamppb.Now()}
	addr := serveFake(t, f, nil)

	if code, out, errOut := cli(t, plain(addr, "builds", "unblock", "b2", "deploy")...); code != 0 ||
		out != "job deploy of build b2 is unblocked: it runs once its dependencies have succeeded\n" || errOut != "" {
		t.Errorf("unblock: exit %d, %q, %q", code, out, errOut)
	}
	code, out, _ := cli(t, plain(addr, "builds", "unblock", "b2", "deploy", "-o", "json")...)
	var b map[string]any
	if err := json.Unmarshal([]byte(out), &b); code != 0 || err != nil || b["id"] != "b2" || b["state"] != "running" {
		t.Errorf("unblock -o json: exit %d, %v\n%s", code, err, out)
	}
	if code, out, errOut := cli(t, plain(addr, "builds", "unblock", "b1", "deploy")...); code != 1 || out != "" ||
		errOut != "monkeyci: build b1 is ended: only a running build's jobs can be unblocked\n" {
		t.Errorf("unblock of an ended build: exit %d, %q, %q", code, out, errOut)
	}
	if code, _, errOut := cli(t, plain(addr, "builds", "unblock", "nope", "deploy")...); code != 1 || errOut != "monkeyci: build \"nope\": not found\n" {
		t.Errorf("unblock of an unknown build: exit %d, %q", code, errOut)
	}
	want := []*fleet.UnblockJobRequest{{Build: "b2", Job: "deploy"}, {Build: "b2", Job: "deploy"}, {Build: "b1", Job: "deploy"}, {Build: "nope", Job: "deploy"}}
	assertRequests(t, f, "UnblockJob", want[0], want[1], want[2], want[3])

	f.reset()
	for _, args := range [][]string{{"builds", "unblock", "b2"}, {"builds", "unblock", "b2", "deploy", "more"}, {"builds", "unblock", "b2", "deploy", "-o", "yaml"}} {
		if code, _, errOut := cli(t, plain(addr, args...)...); code != 2 {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("usage errors made calls: %v", f.calls)
	}
}
