package link

import (
	"encoding/json"
	"strconv"
	"sync"

	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/logorder"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// maxUnacked bounds the log bytes of one attempt kept for resending; a job
// that outruns the coordinator waits (its output waits in its files).
const maxUnacked = 8 << 20

// chunkSize is the largest log chunk sent.
const chunkSize = 256 << 10

// outbox keeps what an agent has to tell the coordinator about its
// attempts until the coordinator acknowledges it, so a reconnect resends
// exactly what was not stored. Safe for concurrent use.
type outbox struct {
	mu    sync.Mutex
	cond  *sync.Cond // signalled on every change
	boxes map[string]*attemptBox
	order []string
	// control messages (accepts, heartbeats) go before everything else.
	control []*fleet.AgentMessage
}

type attemptBox struct {
	ba      *fleet.BuildAttempt
	nextSeq int64
	events  []*fleet.BuildEvent // unacknowledged, in seq order
	sentSeq int64               // sent on the current connection
	logs    map[streamKey]*logBuf
	done    *fleet.BuildDone // set when the attempt has ended
	// doneSent: the end is on the wire; an answer that is not done (events
	// missing) lets it go again once they are stored.
	doneSent bool
	acked    bool // the coordinator stored the end: forget it
}

type streamKey struct{ job, stream string }

func newOutbox() *outbox {
	o := &outbox{boxes: map[string]*attemptBox{}}
	o.cond = sync.NewCond(&o.mu)
	return o
}

func key(ba *fleet.BuildAttempt) string {
	return ba.GetBuildId() + "/" + strconv.Itoa(int(ba.GetAttempt()))
}

func (o *outbox) open(ba *fleet.BuildAttempt) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.boxes[key(ba)] = &attemptBox{ba: ba, logs: map[streamKey]*logBuf{}}
	o.order = append(o.order, key(ba))
	o.cond.Broadcast()
}

func (o *outbox) event(ba *fleet.BuildAttempt, e events.Event) {
	body, err := json.Marshal(e)
	if err != nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.boxes[key(ba)]
	if b == nil {
		return
	}
	b.nextSeq++
	b.events = append(b.events, &fleet.BuildEvent{Build: ba, Seq: b.nextSeq, Event: body})
	o.cond.Broadcast()
}

// output adds log bytes written by command ("" when none), waiting while
// too much is unacknowledged; bytes of "out" and "err" get a record in the
// job's order index, so a reader can merge the two in the order they came.
func (o *outbox) output(ba *fleet.BuildAttempt, job, command, stream string, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		b := o.boxes[key(ba)]
		if b == nil {
			return // refused or forgotten
		}
		lb := b.logs[streamKey{job, stream}]
		if lb == nil {
			lb = &logBuf{}
			b.logs[streamKey{job, stream}] = lb
		}
		if lb.size < maxUnacked {
			off := lb.end()
			lb.add(data)
			if (stream == "out" || stream == "err") && len(data) > 0 {
				b.record(job, logorder.Record{Command: command, Stream: stream, Offset: off, Length: int64(len(data))})
			}
			o.cond.Broadcast()
			return
		}
		o.cond.Wait()
	}
}

// started records in job's order index that command starts, with its text.
func (o *outbox) started(ba *fleet.BuildAttempt, job, command, text string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if b := o.boxes[key(ba)]; b != nil {
		b.record(job, logorder.Record{Command: command, Start: true, Text: text})
		o.cond.Broadcast()
	}
}

// record appends r to job's order index.
func (b *attemptBox) record(job string, r logorder.Record) {
	k := streamKey{job, logorder.Stream}
	lb := b.logs[k]
	if lb == nil {
		lb = &logBuf{}
		b.logs[k] = lb
	}
	var line [64]byte
	lb.add(r.Append(line[:0]))
}

// end records the attempt's result; it is sent once all else is stored.
// needs, if set, hands the build back for an agent with those labels.
func (o *outbox) end(ba *fleet.BuildAttempt, result events.Result, message string, needs map[string]string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if b := o.boxes[key(ba)]; b != nil {
		b.done = &fleet.BuildDone{Build: ba, Result: string(result), Message: message, LastSeq: b.nextSeq, Needs: needs}
		o.cond.Broadcast()
	}
}

// forget drops an attempt (refused by the coordinator, or fully stored).
func (o *outbox) forget(ba *fleet.BuildAttempt) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.boxes, key(ba))
	for i, k := range o.order {
		if k == key(ba) {
			o.order = append(o.order[:i], o.order[i+1:]...)
			break
		}
	}
	o.cond.Broadcast()
}

// ack applies the coordinator's acknowledgement.
func (o *outbox) ack(a *fleet.Ack) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.boxes[key(a.GetBuild())]
	if b == nil {
		return
	}
	for len(b.events) > 0 && b.events[0].GetSeq() <= a.GetSeq() {
		b.events = b.events[1:]
	}
	if b.sentSeq < a.GetSeq() {
		b.sentSeq = a.GetSeq()
	}
	for _, lo := range a.GetLogs() {
		lb := b.logs[streamKey{lo.GetJob(), lo.GetStream()}]
		if lb == nil {
			continue
		}
		// Chunks go in order on one stream, so an acknowledged size only
		// moves forward; after a reconnect, rewind starts from it again.
		lb.ackTo(lo.GetOffset())
	}
	if a.GetDone() {
		b.acked = true
	} else if b.doneSent && len(b.events) == 0 {
		b.doneSent = false
	}
	o.cond.Broadcast()
}

// rewind marks everything unacknowledged as unsent, for a new connection.
func (o *outbox) rewind() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.control = nil
	for _, b := range o.boxes {
		b.sentSeq = b.nextSeq - int64(len(b.events))
		b.doneSent = false
		for _, lb := range b.logs {
			lb.sent = lb.acked
		}
	}
	o.cond.Broadcast()
}

// holding lists the attempts with something still to tell.
func (o *outbox) holding() []*fleet.BuildAttempt {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]*fleet.BuildAttempt, 0, len(o.order))
	for _, k := range o.order {
		out = append(out, o.boxes[k].ba)
	}
	return out
}

// push queues a control message.
func (o *outbox) push(m *fleet.AgentMessage) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.control = append(o.control, m)
	o.cond.Broadcast()
}

// wake makes a waiting next look at stop again.
func (o *outbox) wake() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.cond.Broadcast()
}

// empty reports whether nothing is left to tell.
func (o *outbox) empty() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.boxes) == 0
}

// next waits for the next message to send, or returns nil once stop is
// closed. Events and logs go first; an attempt's end goes once all of its
// events and logs are acknowledged, so the coordinator ends a build only
// with its whole log stored.
func (o *outbox) next(stop <-chan struct{}) *fleet.AgentMessage {
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		if len(o.control) > 0 {
			m := o.control[0]
			o.control = o.control[1:]
			return m
		}
		for _, k := range o.order {
			if m := o.boxes[k].nextLocked(); m != nil {
				return m
			}
		}
		o.cond.Wait()
	}
}

func (b *attemptBox) nextLocked() *fleet.AgentMessage {
	for _, e := range b.events {
		if e.GetSeq() > b.sentSeq {
			b.sentSeq = e.GetSeq()
			return &fleet.AgentMessage{Msg: &fleet.AgentMessage_Event{Event: e}}
		}
	}
	pending := len(b.events) > 0
	// Order indexes go before the output they index: a reader that finds
	// a job's index waits for its bytes, and one that finds the bytes first
	// would take the job for one without an index.
	for k, lb := range b.logs {
		if k.stream == logorder.Stream && lb.sent < lb.end() {
			return b.chunkLocked(k, lb)
		}
	}
	for k, lb := range b.logs {
		if lb.sent < lb.end() {
			return b.chunkLocked(k, lb)
		}
		pending = pending || lb.size > 0
	}
	if b.done != nil && !pending && !b.doneSent && !b.acked {
		b.doneSent = true
		return &fleet.AgentMessage{Msg: &fleet.AgentMessage_Done{Done: b.done}}
	}
	return nil
}

// chunkLocked is the next chunk of a stream, marked sent.
func (b *attemptBox) chunkLocked(k streamKey, lb *logBuf) *fleet.AgentMessage {
	data := lb.chunk(lb.sent, chunkSize)
	chunk := &fleet.LogChunk{Build: b.ba, Job: k.job, Stream: k.stream, Offset: lb.sent, Data: data}
	lb.sent += int64(len(data))
	return &fleet.AgentMessage{Msg: &fleet.AgentMessage_Log{Log: chunk}}
}
