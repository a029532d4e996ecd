package wait

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPollWaitsForTheCondition(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 5 {
			n.Add(1)
			time.Sleep(time.Millisecond)
		}
	}()
	if !Poll(time.Minute, func() bool { return n.Load() == 5 }) {
		t.Fatal("Poll gave up on a condition that came")
	}
}

func TestPollGivesUpAfterTheBound(t *testing.T) {
	start := time.Now()
	if Poll(20*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll said a condition that never holds held")
	}
	if time.Since(start) < 20*time.Millisecond {
		t.Error("Poll gave up before its bound")
	}
}

// recorder is a testing.TB that keeps what Fatalf said.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = format
	if len(args) > 0 {
		r.msg = strings.TrimSpace(strings.ReplaceAll(format, "%s", "")) + " " + args[len(args)-1].(string)
	}
}

func TestWithinSaysWhatNeverCame(t *testing.T) {
	r := &recorder{TB: t}
	Within(r, time.Millisecond, "the build to end", func() bool { return false })
	if !strings.Contains(r.msg, "the build to end") {
		t.Errorf("failed with %q", r.msg)
	}
}
