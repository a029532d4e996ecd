package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Trace is a day of build arrivals.
type Trace struct {
	Name   string // the file's name, for messages
	Builds []Build
}

// Build is one arrival: a build whose jobs run one after the other, as a
// script's sequential jobs do.
type Build struct {
	Line    int           // its line in the trace
	Arrival time.Duration // from the day's start
	Jobs    []time.Duration
}

// The trace's header, and bounds that keep a typo (or a fuzzer) from
// making a build that runs for years.
const (
	header     = "arrival,jobs,durations"
	maxArrival = 7 * 24 * time.Hour
	maxJobs    = 1000
	maxJob     = 24 * time.Hour
)

// ParseTrace reads a trace: a CSV with the header arrival,jobs,durations,
// then a build a line. arrival is seconds from the day's start (12.5) or
// HH:MM:SS; jobs is how many jobs the build runs; durations are their
// seconds, separated by ';'. Blank lines and lines starting with '#' are
// skipped. Errors name the line and the field: "day.csv:12: durations: 3
// given for 2 jobs".
func ParseTrace(r io.Reader, name string) (Trace, error) {
	t := Trace{Name: name}
	sc := bufio.NewScanner(r)
	line, sawHeader := 0, false
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff") // a spreadsheet's byte order mark
		}
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, ",")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		if !sawHeader {
			if got := strings.ToLower(strings.Join(fields, ",")); got != header {
				return Trace{}, fmt.Errorf("%s:%d: header: want %q, got %q", name, line, header, text)
			}
			sawHeader = true
			continue
		}
		b, err := parseBuild(fields)
		if err != nil {
			return Trace{}, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		b.Line = line
		t.Builds = append(t.Builds, b)
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return Trace{}, fmt.Errorf("%s:%d: line too long", name, line+1)
	case err != nil:
		return Trace{}, fmt.Errorf("%s: reading: %w", name, err)
	case !sawHeader:
		return Trace{}, fmt.Errorf("%s: empty; want the header %q", name, header)
	case len(t.Builds) == 0:
		return Trace{}, fmt.Errorf("%s: no builds after the header", name)
	}
	return t, nil
}

// parseBuild reads the three fields of a line; its errors start with the
// field's name.
func parseBuild(fields []string) (Build, error) {
	if len(fields) != 3 {
		return Build{}, fmt.Errorf("want 3 fields (%s), got %d", header, len(fields))
	}
	arrival, err := parseArrival(fields[0])
	if err != nil {
		return Build{}, fmt.Errorf("arrival: %w", err)
	}
	jobs, err := strconv.Atoi(fields[1])
	switch {
	case err != nil:
		return Build{}, fmt.Errorf("jobs: %q is not a whole number", fields[1])
	case jobs < 1:
		return Build{}, fmt.Errorf("jobs: %d; a build runs at least 1", jobs)
	case jobs > maxJobs:
		return Build{}, fmt.Errorf("jobs: %d is more than %d", jobs, maxJobs)
	}
	durations := strings.Split(fields[2], ";")
	if len(durations) != jobs {
		return Build{}, fmt.Errorf("durations: %d given for %d jobs", len(durations), jobs)
	}
	b := Build{Arrival: arrival}
	for i, d := range durations {
		s, ok := seconds(strings.TrimSpace(d))
		switch {
		case !ok || s <= 0:
			return Build{}, fmt.Errorf("durations: job %d: %q is not a positive number of seconds", i+1, d)
		case s > maxJob.Seconds():
			return Build{}, fmt.Errorf("durations: job %d: %s s is more than %.0f h", i+1, d, maxJob.Hours())
		}
		b.Jobs = append(b.Jobs, secondsDuration(s))
	}
	return b, nil
}

// parseArrival reads seconds from the day's start, or HH:MM:SS.
func parseArrival(s string) (time.Duration, error) {
	var d time.Duration
	if parts := strings.Split(s, ":"); len(parts) == 3 {
		h, herr := strconv.Atoi(parts[0])
		m, merr := strconv.Atoi(parts[1])
		sec, serr := strconv.Atoi(parts[2])
		if herr != nil || merr != nil || serr != nil || h < 0 || m < 0 || m > 59 || sec < 0 || sec > 59 || h > int(maxArrival.Hours()) {
			return 0, fmt.Errorf("%q is neither seconds nor HH:MM:SS", s)
		}
		d = time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	} else {
		sec, ok := seconds(s)
		if !ok || sec < 0 {
			return 0, fmt.Errorf("%q is neither seconds nor HH:MM:SS", s)
		}
		if sec > maxArrival.Seconds() {
			return 0, fmt.Errorf("%s s is beyond the %.0f h a trace may span", s, maxArrival.Hours())
		}
		d = secondsDuration(sec)
	}
	if d > maxArrival {
		return 0, fmt.Errorf("%s is beyond the %.0f h a trace may span", s, maxArrival.Hours())
	}
	return d, nil
}

// seconds reads a finite decimal number.
func seconds(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
}

// secondsDuration rounds to the millisecond: a trace says no finer.
func secondsDuration(s float64) time.Duration {
	return time.Duration(math.Round(s*1000)) * time.Millisecond
}
