package link

import (
	"bytes"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// held is what the outbox holds of a stream.
func held(o *outbox, ba *fleet.BuildAttempt, job, stream string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	lb := o.boxes[key(ba)].logs[streamKey{job, stream}]
	if lb == nil {
		return ""
	}
	return string(bytes.Join(lb.segs, nil))
}

// A secret's value never reaches the outbox, in output or in an event,
// also when the job writes it in two pieces; what is held back for a
// possible secret is out before the job's end.
func TestReporterMasksSecretsSplitAcrossWrites(t *testing.T) {
	o := newOutbox()
	ba := &fleet.BuildAttempt{BuildId: "b", Attempt: 1}
	o.open(ba)
	rep := newReporter(o, ba, []string{"s3cr3t-value"})
	rep.Output("deploy", "out", []byte("token s3cr"))
	rep.Output("deploy", "out", []byte("3t-value sent\nlast s3c"))
	rep.Event(events.Event{Type: events.JobEnd, Job: "deploy", Message: "failed with s3cr3t-value"})

	if got := held(o, ba, "deploy", "out"); got != "token *** sent\nlast s3c" {
		t.Errorf("output %q", got)
	}
	o.mu.Lock()
	evs := o.boxes[key(ba)].events
	o.mu.Unlock()
	if len(evs) != 1 || strings.Contains(string(evs[0].GetEvent()), "s3cr3t") || !strings.Contains(string(evs[0].GetEvent()), "failed with ***") {
		t.Errorf("events %v", evs)
	}
}
