package events

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"olympos.io/encoding/edn"
)

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)

// The job wrapper's lines (docs/architecture.md, Job containers) and what they mean.
func TestDecodeWrapperLines(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Event
	}{
		{`{:type :container/start}`, Event{Type: ContainerStart}},
		{`{:type :command/start :command "0" :stdout "/j/logs/0_out.log" :stderr "/j/logs/0_err.log"}`,
			Event{Type: CommandStart, Command: "0", Stdout: "/j/logs/0_out.log", Stderr: "/j/logs/0_err.log"}},
		{`{:type :command/end :command "0" :exit 0 :stdout "o" :stderr "e"}`,
			Event{Type: CommandEnd, Command: "0", Exit: ExitCode(0), Stdout: "o", Stderr: "e"}},
		{`{:type :container/script-end :result {:status :success :exit 0} :done? true}`,
			Event{Type: ContainerScriptEnd, Status: Success, Exit: ExitCode(0), Done: true}},
		{`{:type :container/script-end :result {:status :error :exit 2} :step "1" :done? true}`,
			Event{Type: ContainerScriptEnd, Status: Error, Exit: ExitCode(2), Step: "1", Done: true}},
		// MonkeyCI variants: epoch millis, numeric indexes, :job-id, unknown keys, commas.
		{`{:type :job/end, :time 1700000000123 :job-id "build" :status :failure :sid ["a" "b"] :x #{1}}`,
			Event{Type: JobEnd, Time: time.UnixMilli(1700000000123).UTC(), Job: "build", Status: Failure}},
		{`{:type :command/end :command 3 :exit 1 :step 3}`, Event{Type: CommandEnd, Command: "3", Exit: ExitCode(1), Step: "3"}},
		{`{:type "job/start" :time "2026-03-04T05:06:07.890123456Z"}`, Event{Type: JobStart, Time: t0}},
		{` {:type :job/start :time #inst "2026-03-04T05:06:07.890123456Z"} ; trailing comment`, Event{Type: JobStart, Time: t0}},
		{`{:type :script/resumed :duration 1500000000 :message "line\n\"two\""}`,
			Event{Type: ScriptResumed, Duration: 1500 * time.Millisecond, Message: "line\n\"two\""}},
		{`{:type :job/executed :done? false}`, Event{Type: JobExecuted}},
	} {
		got, err := DecodeEDN([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if !equal(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.in, got, c.want)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	for _, in := range []string{
		``, `   `, `nil`, `[1 2]`, `"x"`, `{:type :x`, `{:type :x} {`, `{:type :x} {:type :y}`, `{:type :x})`,
		`{}`, `{:exit 1}`, `{:type 1.5}`, `{:type :x :exit "0"}`, `{:type :x :exit 1.0}`,
		`{:type :x :exit 99999999999999999999}`, `{:type :x :done? "yes"}`, `{:type :x :action? 1}`, `{:type :x :time :now}`,
		`{:type :x :time #inst "yesterday"}`, `{:type :x :result 0}`, `{:type :x :result {:status 7.5}}`,
		`{:type :x :duration "1s"}`, `{:type [:x]}`, `{:type :x :stdout {:a 1}}`,
	} {
		if e, err := DecodeEDN([]byte(in)); err == nil {
			t.Errorf("%q: no error, got %+v", in, e)
		}
	}
}

func TestEncodeEDN(t *testing.T) {
	for _, c := range []struct {
		in   Event
		want string
	}{
		{Event{Type: CommandEnd, Job: "x", Command: "0", Exit: ExitCode(0)}, `{:type :command/end :job "x" :command "0" :exit 0}`},
		{Event{Type: ContainerScriptEnd, Status: Error, Exit: ExitCode(2), Step: "1", Done: true},
			`{:type :container/script-end :result {:status :error :exit 2} :step "1" :done? true}`},
		{Event{Type: JobEnd, Time: t0, Status: Success, Duration: time.Second},
			`{:type :job/end :time #inst "2026-03-04T05:06:07.890123456Z" :status :success :duration 1000000000}`},
		{Event{Type: "odd type", Status: "not ok", Message: "a\"b\\c\nd\te"},
			`{:type "odd type" :status "not ok" :message "a\"b\\c\nd\te"}`},
		{Event{Type: JobStart, Time: time.UnixMilli(-1e15)}, `{:type :job/start :time -1000000000000000}`},
		{Event{Type: JobQueued, Job: "c", Deps: []string{"a", "b\""}}, `{:type :job/queued :job "c" :deps ["a" "b\""]}`},
		{Event{Type: JobQueued, Job: "pack", Deps: []string{"c"}, Action: true}, `{:type :job/queued :job "pack" :action? true :deps ["c"]}`},
		{Event{Type: JobQueued, Job: "db", Expose: []int{5432, 8080}}, `{:type :job/queued :job "db" :expose [5432 8080]}`},
		{Event{Type: JobStart, Job: "t", Caches: []Cache{{ID: "deps", Scope: "branch:feature", From: "branch:main"}, {ID: "x", Scope: "pr:7"}}},
			`{:type :job/start :job "t" :caches [{:id "deps" :scope "branch:feature" :from "branch:main"} {:id "x" :scope "pr:7"}]}`},
		{Event{Type: JobStart, Job: "t", Caches: []Cache{{ID: "deps", Key: "ab12", Scope: "branch:main", From: "branch:main", Size: 2048, Fetched: true, Took: 1500 * time.Millisecond}}},
			`{:type :job/start :job "t" :caches [{:id "deps" :scope "branch:main" :from "branch:main" :key "ab12" :size 2048 :fetched true :took 1500000000}]}`},
	} {
		got := string(EncodeEDN(c.in))
		if got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
		back, err := DecodeEDN([]byte(got))
		if err != nil || !equal(back, c.in) {
			t.Errorf("round trip of %s: %+v, %v", got, back, err)
		}
	}
}

// The edn package uses the Marshaler/Unmarshaler methods, inside other values too.
func TestEDNPackage(t *testing.T) {
	in := []Event{{Type: BuildStart, Build: "b1"}, {Type: BuildEnd, Build: "b1", Status: Canceled}}
	b, err := edn.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out []Event
	if err := edn.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if len(out) != 2 || !equal(out[0], in[0]) || !equal(out[1], in[1]) {
		t.Fatalf("%s -> %+v", b, out)
	}
}

// `monkeyci run --json` prints one event per line in this form.
func TestJSON(t *testing.T) {
	evs := []Event{
		{Type: JobStart, Time: t0, Build: "b", Job: "test", Caches: []Cache{{ID: "deps", Scope: "branch:main", From: "branch:main"}}},
		{Type: CommandEnd, Job: "test", Command: "0", Exit: ExitCode(0)},
		{Type: JobEnd, Job: "test", Status: Failure, Exit: ExitCode(2), Message: "line 1 failed", Duration: 2 * time.Second},
	}
	want := `{"type":"job/start","time":"2026-03-04T05:06:07.890123456Z","build":"b","job":"test","caches":[{"id":"deps","scope":"branch:main","from":"branch:main"}]}
{"type":"command/end","job":"test","command":"0","exit":0}
{"type":"job/end","job":"test","exit":2,"status":"failure","message":"line 1 failed","duration":2000000000}
`
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range evs {
		if err := enc.Encode(e); err != nil {
			t.Fatal(err)
		}
	}
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
	dec := json.NewDecoder(strings.NewReader(want))
	for i := range evs {
		var e Event
		if err := dec.Decode(&e); err != nil || !equal(e, evs[i]) {
			t.Fatalf("line %d: %+v, %v", i, e, err)
		}
	}
}

func FuzzDecodeEDN(f *testing.F) {
	for _, s := range []string{
		`{:type :container/start}`,
		`{:type :command/start :command "0" :stdout "/j/logs/0_out.log" :stderr "/j/logs/0_err.log"}`,
		`{:type :container/script-end :result {:status :error :exit 2} :step "1" :done? true}`,
		`{:type :job/end :time #inst "2026-03-04T05:06:07Z" :status :failure :duration 5 :message "m"}`,
		`{:type :job/end :time 1700000000123 :x [1 {:y #{2}}] :z #tag "v"}`,
		`{:type :job/start :caches [{:id "d" :scope "tag:v1" :from "tag:v1"}]}`,
		`{:type :x`, `[{:type :x}]`, `#_ {:type :x} {:type :y}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEDN(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode to EDN that decodes to the same event.
		enc := EncodeEDN(e)
		back, err := DecodeEDN(enc)
		if err != nil {
			t.Fatalf("%q -> %+v -> %s: %v", b, e, enc, err)
		}
		if !equal(back, e) {
			t.Fatalf("%q -> %+v -> %s -> %+v", b, e, enc, back)
		}
	})
}

// equal compares events, times by instant.
func equal(a, b Event) bool {
	if !a.Time.Equal(b.Time) {
		return false
	}
	a.Time, b.Time = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}
