package sim

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseTrace(t *testing.T) {
	const in = "\ufeff# a comment\n\n" +
		"Arrival, Jobs, Durations\r\n" +
		"0,1,60\n" +
		"08:30:05,2,30;90.5\n" +
		"  12.25 , 3 , 1; 2 ;3  \n"
	got, err := ParseTrace(strings.NewReader(in), "t.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := Trace{Name: "t.csv", Builds: []Build{
		{Line: 4, Arrival: 0, Jobs: []time.Duration{60 * time.Second}},
		{Line: 5, Arrival: 8*time.Hour + 30*time.Minute + 5*time.Second, Jobs: []time.Duration{30 * time.Second, 90500 * time.Millisecond}},
		{Line: 6, Arrival: 12250 * time.Millisecond, Jobs: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

func TestParseTraceErrors(t *testing.T) {
	const h = "arrival,jobs,durations\n"
	for _, c := range []struct{ in, want string }{
		{"", `day.csv: empty; want the header "arrival,jobs,durations"`},
		{"# only a comment\n", `day.csv: empty; want the header "arrival,jobs,durations"`},
		{h, "day.csv: no builds after the header"},
		{"arrival,jobs\n0,1\n", `day.csv:1: header: want "arrival,jobs,durations", got "arrival,jobs"`},
		{"0,1,60\n", `day.csv:1: header: want "arrival,jobs,durations", got "0,1,60"`},
		{h + "0,1\n", "day.csv:2: want 3 fields (arrival,jobs,durations), got 2"},
		{h + "0,1,60,7\n", "day.csv:2: want 3 fields (arrival,jobs,durations), got 4"},
		{h + "noon,1,60\n", `day.csv:2: arrival: "noon" is neither seconds nor HH:MM:SS`},
		{h + "-5,1,60\n", `day.csv:2: arrival: "-5" is neither seconds nor HH:MM:SS`},
		{h + "09:61:00,1,60\n", `day.csv:2: arrival: "09:61:00" is neither seconds nor HH:MM:SS`},
		{h + "09:00,1,60\n", `day.csv:2: arrival: "09:00" is neither seconds nor HH:MM:SS`},
		{h + "NaN,1,60\n", `day.csv:2: arrival: "NaN" is neither seconds nor HH:MM:SS`},
		{h + "1e9,1,60\n", "day.csv:2: arrival: 1e9 s is beyond the 168 h a trace may span"},
		{h + "168:00:01,1,60\n", "day.csv:2: arrival: 168:00:01 is beyond the 168 h a trace may span"},
		{h + "0,two,60\n", `day.csv:2: jobs: "two" is not a whole number`},
		{h + "0,0,\n", "day.csv:2: jobs: 0; a build runs at least 1"},
		{h + "0,1001,60\n", "day.csv:2: jobs: 1001 is more than 1000"},
		{h + "0,1,60\n0,2,60;30;30\n", "day.csv:3: durations: 3 given for 2 jobs"},
		{h + "0,2,60\n", "day.csv:2: durations: 1 given for 2 jobs"},
		{h + "0,2,60;\n", `day.csv:2: durations: job 2: "" is not a positive number of seconds`},
		{h + "0,2,60;0\n", `day.csv:2: durations: job 2: "0" is not a positive number of seconds`},
		{h + "0,1,1m\n", `day.csv:2: durations: job 1: "1m" is not a positive number of seconds`},
		{h + "0,1,86401\n", "day.csv:2: durations: job 1: 86401 s is more than 24 h"},
		{h + "0,1," + strings.Repeat("1", 70000) + "\n", "day.csv:2: line too long"},
	} {
		_, err := ParseTrace(strings.NewReader(c.in), "day.csv")
		if err == nil || err.Error() != c.want {
			t.Errorf("%.40q: got %v\nwant %s", c.in, err, c.want)
		}
	}
}

// FuzzParseTrace: no input panics, and a trace that parses is one Run
// can take: builds with jobs, in the bounds.
func FuzzParseTrace(f *testing.F) {
	day, err := os.ReadFile("testdata/day.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(day)
	f.Add([]byte("arrival,jobs,durations\n0,1,60\n23:59:59,2,1.5;2e2\n"))
	f.Add([]byte("arrival,jobs,durations\n0,3,1;;2\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := ParseTrace(strings.NewReader(string(data)), "fuzz.csv")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.csv") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		for _, b := range tr.Builds {
			if b.Arrival < 0 || b.Arrival > maxArrival || len(b.Jobs) < 1 || len(b.Jobs) > maxJobs {
				t.Fatalf("line %d out of bounds: %+v", b.Line, b)
			}
			for _, j := range b.Jobs {
				if j < 0 || j > maxJob {
					t.Fatalf("line %d: job out of bounds: %v", b.Line, j)
				}
			}
		}
	})
}

// The shipped trace is what gentrace says it is (see its doc).
func TestShippedTrace(t *testing.T) {
	tr := day(t)
	if n := len(tr.Builds); n < 250 || n > 400 {
		t.Errorf("%d builds, want 250 to 400", n)
	}
	perHour := make([]int, 24)
	for _, b := range tr.Builds {
		perHour[b.Arrival/time.Hour]++
		var total time.Duration
		for _, j := range b.Jobs {
			total += j
		}
		if len(b.Jobs) > 4 || total < 30*time.Second || total > 15*time.Minute {
			t.Errorf("line %d: %d jobs, %s in all; want 1 to 4, 30 s to 15 min", b.Line, len(b.Jobs), total)
		}
	}
	night, lunch, afternoon := 0, perHour[12], perHour[15]
	for h := range 7 {
		night += perHour[h]
	}
	if night > 10 || lunch >= perHour[10] || afternoon <= perHour[10] {
		t.Errorf("builds per hour %v: want quiet nights, a lunch dip, an afternoon peak", perHour)
	}
}

func day(t testing.TB) Trace {
	t.Helper()
	f, err := os.Open("testdata/day.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := ParseTrace(f, "day.csv")
	if err != nil {
		t.Fatal(err)
	}
	return tr
}
