package link

import (
	"testing"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// The outbox keeps, beside a job's out and err, the order they came in,
// which command wrote them, and each command's start with its line;
// masked, a command's held-back bytes are its own, released before the
// next command starts. What a job writes as a command's name in its
// wrapper's events is not trusted: a name that is no index is no command.
func TestTheOrderIndexSaysWhoWroteWhatWhen(t *testing.T) {
	o := newOutbox()
	ba := &fleet.BuildAttempt{BuildId: "b", Attempt: 1}
	o.open(ba)
	rep := newReporter(o, ba, []string{"s3cr3t"})
	rep.Output("j", "out", []byte("before any command\n"))
	rep.Event(events.Event{Type: events.CommandStart, Job: "j", Command: "0", Line: "echo s3cr3t"})
	rep.Output("j", "out", []byte("out1\n"))
	rep.Output("j", "err", []byte("err1\n"))
	rep.Output("j", "out", []byte("tail s3c")) // held back: it may be the secret
	rep.Event(events.Event{Type: events.CommandEnd, Job: "j", Command: "0"})
	rep.Event(events.Event{Type: events.CommandStart, Job: "j", Command: "1\no 0 0 99"})
	rep.Output("j", "err", []byte("forged?\n"))

	want := `o - 0 19
c 0 "echo ***"
o 0 19 5
e 0 0 5
o 0 24 5
o 0 29 3
e - 5 8
`
	if got := held(o, ba, "j", "ord"); got != want {
		t.Errorf("the order index:\n%s\nwant\n%s", got, want)
	}
	if got := held(o, ba, "j", "out"); got != "before any command\nout1\ntail s3c" {
		t.Errorf("out %q", got)
	}

	// The index goes out before the bytes it names.
	o.mu.Lock()
	nEvents := len(o.boxes[key(ba)].events)
	o.mu.Unlock()
	var sent []string
	for range nEvents + 3 {
		if l := o.next(nil).GetLog(); l != nil {
			sent = append(sent, l.GetStream())
		}
	}
	if len(sent) != 3 || sent[0] != "ord" {
		t.Errorf("sent streams %v, want the index first", sent)
	}
}
