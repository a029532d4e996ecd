package admin

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(d)) }

func TestAgentsTable(t *testing.T) {
	var buf bytes.Buffer
	err := AgentsTable(&buf, []*fleet.AgentInfo{
		{Id: "a1", Name: "box", State: "ready", MilliCpus: 2000, Memory: 8 << 30, FreeMilliCpus: 1500, FreeMemory: 6 << 30,
			Builds: []string{"b1"}, Labels: map[string]string{"os": "linux", "arch": "arm64"}},
		{Id: "a2", Name: "gone", State: "lost"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID  NAME  STATE  CPUS  MEMORY  FREE     BUILDS  LABELS\n" +
		"a1  box   ready  2     8GB     1.5/6GB  1       arch=arm64,os=linux\n" +
		"a2  gone  lost   -     -       -        0       -\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestAgentsJSONHasStableKeys(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, Agents([]*fleet.AgentInfo{{Id: "a2", Name: "gone", State: "lost"}})); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	keys := sortedKeys(got[0])
	want := []string{"builds", "free_memory", "free_milli_cpus", "id", "labels", "last_seen", "memory", "milli_cpus", "name", "state", "version"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	// empty lists and maps are [] and {}, not null, for scripts
	if !strings.Contains(buf.String(), `"builds": []`) || !strings.Contains(buf.String(), `"labels": {}`) {
		t.Errorf("empty builds or labels not [] / {}:\n%s", buf.String())
	}
	buf.Reset()
	if err := WriteJSON(&buf, Agents(nil)); err != nil || buf.String() != "[]\n" {
		t.Errorf("no agents: %q, %v", buf.String(), err)
	}
}

func sortedKeys(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestBuildsTable(t *testing.T) {
	var buf bytes.Buffer
	err := BuildsTable(&buf, []*fleet.BuildInfo{
		{Id: "b2", Repo: "/src/app", Branch: "main", Commit: "0123456789abcdef0123", State: "running", Attempt: 2, Agent: "a1",
			Created: ts(-3 * time.Minute), Started: ts(-90 * time.Second)},
		{Id: "b1", Repo: "https://example.com/x.git", State: "ended", Result: "failure", Attempt: 1, Agent: "a1",
			Created: ts(-5 * time.Hour), Started: ts(-5 * time.Hour), Ended: ts(-5*time.Hour + 4200*time.Millisecond)},
		{Id: "b3", Repo: "r", State: "queued", Created: ts(-10 * time.Second)},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID  REPO                       BRANCH  COMMIT        STATE    RESULT   ATTEMPT  AGENT  AGE  DURATION\n" +
		"b2  /src/app                   main    0123456789ab  running  -        2        a1     3m   1m30s\n" +
		"b1  https://example.com/x.git  -       -             ended    failure  1        a1     5h   4.2s\n" +
		"b3  r                          -       -             queued   -        0        -      10s  -\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestBuildJSON(t *testing.T) {
	var buf bytes.Buffer
	b := &fleet.BuildInfo{Id: "b1", Repo: "r", State: "queued", Waiting: "no agent has os=windows", Created: ts(0)}
	if err := WriteJSON(&buf, Builds([]*fleet.BuildInfo{b})); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"agent", "attempt", "branch", "cache_fallback", "cache_scope", "commit", "created", "ended", "id", "message",
		"priority", "pull_request", "repo", "result", "started", "state", "url", "waiting"}
	if keys := sortedKeys(got[0]); !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	if got[0]["created"] != "2026-03-01T12:00:00Z" || got[0]["started"] != nil || got[0]["waiting"] != "no agent has os=windows" {
		t.Errorf("got %v", got[0])
	}
}

func detail() *fleet.BuildDetail {
	return &fleet.BuildDetail{
		Build: &fleet.BuildInfo{Id: "b1", Repo: "r", Url: "/src/r", Branch: "main", Commit: "abc", State: "ended", Result: "failure",
			Message: "job test failed", Attempt: 2, Agent: "a1", Created: ts(-time.Minute), Started: ts(-50 * time.Second), Ended: ts(-20 * time.Second),
			CacheScope: "branch:feature", CacheFallback: "branch:main",
			// 3: retried, then canceled before it was sent anywhere.
			AttemptReasons: map[int32]string{2: "agent lost", 3: "retried by admin"}},
		Events: []*fleet.StoredEvent{
			{Attempt: 1, Seq: 1, Event: []byte(`{"type":"build/start","time":"2026-03-01T11:59:10Z","build":"b1"}`)},
			{Attempt: 2, Seq: 1, Event: []byte(`{"type":"job/end","time":"2026-03-01T11:59:30.5Z","build":"b1","job":"test","status":"failure","exit":3,"message":"it broke","duration":2500000000}`)},
			{Attempt: 2, Seq: 2, Event: []byte(`not json`)},
			{Attempt: 2, Seq: 3, Event: []byte(`{"type":"job/start","time":"2026-03-01T11:59:28Z","job":"test","caches":[{"id":"deps","scope":"branch:feature","from":"branch:main"}]}`)},
		},
	}
}

func TestDetailText(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.UTC
	var buf bytes.Buffer
	if err := DetailText(&buf, detail(), now); err != nil {
		t.Fatal(err)
	}
	got := buf.String()
	if strings.Contains(got, "attempt 3") {
		t.Errorf("an attempt that never ran is shown:\n%s", got)
	}
	for _, want := range []string{
		"id:        b1\n",
		"state:     ended\n",
		"result:    failure\n",
		"attempt:   2\n",
		"waiting:   -\n",
		"message:   job test failed\n",
		"duration:  30s\n",
		"\nattempt 2: agent lost\n\nevents:\n",
		"ATTEMPT  TIME          TYPE         JOB   STATUS           MESSAGE\n",
		"1        11:59:10.000  build/start  -     -\n",
		"2        11:59:30.500  job/end      test  failure in 2.5s  it broke (exit 3)\n",
		"2        -             ?            -     -                not json\n",
		"caches:    branch:feature (reads branch:main for a cache it has not yet)\n",
		"2        11:59:28.000  job/start    test  -                caches: deps branch:feature (restored from branch:main)\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in\n%s", want, got)
		}
	}
}

func TestDetailJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, Detail(detail())); err != nil {
		t.Fatal(err)
	}
	var got struct {
		ID       string            `json:"id"`
		State    string            `json:"state"`
		Attempts map[string]string `json:"attempt_reasons"`
		Events   []struct {
			Attempt int             `json:"attempt"`
			Seq     int             `json:"seq"`
			Event   json.RawMessage `json:"event"`
		} `json:"events"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if got.ID != "b1" || got.State != "ended" || len(got.Events) != 4 || got.Events[1].Attempt != 2 || got.Attempts["2"] != "agent lost" {
		t.Errorf("got %+v", got)
	}
	if string(got.Events[2].Event) != `"not json"` {
		t.Errorf("a bad event is %s, want a string", got.Events[2].Event)
	}
}

func TestFormats(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{CPUs(2000), "2"}, {CPUs(1500), "1.5"}, {CPUs(250), "0.25"}, {CPUs(0), "0"},
		{Bytes(8 << 30), "8GB"}, {Bytes(1536 << 20), "1.5GB"}, {Bytes(512 << 20), "512MB"}, {Bytes(100), "100B"},
		{Age(30 * time.Second), "30s"}, {Age(90 * time.Minute), "1h"}, {Age(72 * time.Hour), "3d"}, {Age(-time.Second), "0s"},
		{Duration(350 * time.Millisecond), "350ms"}, {Duration(4240 * time.Millisecond), "4.2s"}, {Duration(83 * time.Second), "1m23s"},
		{ShortCommit("0123456789abcdef"), "0123456789ab"}, {ShortCommit("abc"), "abc"},
		{Labels(nil), "-"}, {Labels(map[string]string{"b": "2", "a": "1"}), "a=1,b=2"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if CheckFormat("json") != nil || CheckFormat("table") != nil || CheckFormat("yaml") == nil {
		t.Error("CheckFormat")
	}
}

func TestResultLine(t *testing.T) {
	b := &fleet.BuildInfo{Id: "b1", Result: "failure", Message: "job test failed", Started: ts(0), Ended: ts(3 * time.Second)}
	if got, want := ResultLine(b), "build b1 failure in 3s: job test failed"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
