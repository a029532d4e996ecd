package fleettest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/monkeyci/monkeyci/logorder"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Output is one output stream of an attempt, as an agent sends it.
type Output struct {
	Job, Stream string
	Data        []byte
}

// SampleOutput is an attempt's output of every kind: the script's stdout
// (with colours) and stderr, a job whose order index merges its stdout
// and stderr (the index first, as an agent sends it), a job of some
// 600 KiB, and a job of one byte. seed makes it differ between attempts.
func SampleOutput(seed int) []Output {
	var out, errs, ord []byte
	for i := range 30 {
		cmd := fmt.Sprint(i % 3)
		ord = logorder.Record{Command: cmd, Start: true, Text: fmt.Sprint("make step", i)}.Append(ord)
		o := fmt.Appendf(nil, "attempt %d, step %d says hello\n", seed, i)
		ord = logorder.Record{Command: cmd, Stream: "out", Offset: int64(len(out)), Length: int64(len(o))}.Append(ord)
		out = append(out, o...)
		if i%4 == 0 {
			e := fmt.Appendf(nil, "step %d complains\n", i)
			ord = logorder.Record{Command: cmd, Stream: "err", Offset: int64(len(errs)), Length: int64(len(e))}.Append(ord)
			errs = append(errs, e...)
		}
	}
	var long bytes.Buffer
	for i := 0; long.Len() < 600<<10; i++ {
		fmt.Fprintf(&long, "attempt %d line %d: compiling package %d\n", seed, i, i*7919%1000)
	}
	return []Output{
		{"", "out", fmt.Appendf(nil, "checking out, attempt %d\n\x1b[32mok\x1b[0m\n", seed)},
		{"", "err", []byte("a warning\n")},
		{"test", logorder.Stream, ord},
		{"test", "out", out},
		{"test", "err", errs},
		{"long", "out", long.Bytes()},
		{"tiny", "err", []byte("!")},
	}
}

// maxChunk is the largest chunk an agent sends.
const maxChunk = 256 << 10

// SendOutput sends outputs as attempt ba's log chunks, as an agent does,
// and waits until the coordinator has acknowledged every byte.
func (a *Agent) SendOutput(t testing.TB, ba *fleet.BuildAttempt, outputs []Output) {
	t.Helper()
	for _, o := range outputs {
		for off := 0; off < len(o.Data); off += maxChunk {
			data := o.Data[off:min(off+maxChunk, len(o.Data))]
			a.Send(t, &fleet.AgentMessage{Msg: &fleet.AgentMessage_Log{Log: &fleet.LogChunk{
				Build: ba, Job: o.Job, Stream: o.Stream, Offset: int64(off), Data: data,
			}}})
		}
	}
	// Acknowledgements come in any order, some merged.
	left := map[[2]string]int64{}
	for _, o := range outputs {
		left[[2]string{o.Job, o.Stream}] = int64(len(o.Data))
	}
	_, err := a.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool {
		if m.GetAck().GetBuild().GetBuildId() != ba.GetBuildId() || m.GetAck().GetBuild().GetAttempt() != ba.GetAttempt() {
			return false
		}
		for _, l := range m.GetAck().GetLogs() {
			k := [2]string{l.GetJob(), l.GetStream()}
			if size, ok := left[k]; ok && l.GetOffset() >= size {
				delete(left, k)
			}
		}
		return len(left) == 0
	})
	if err != nil {
		t.Fatalf("the stream ended before the logs were acknowledged: %v", err)
	}
}
