package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/logorder"
)

// index writes a job's order index as the agent sends it.
func index(recs ...logorder.Record) []byte {
	var b []byte
	for _, r := range recs {
		b = r.Append(b)
	}
	return b
}

// The merged view of a job shows its stdout and stderr in the order its
// index says, stderr marked, each command's line above its output; it
// follows a running job, waiting for bytes the index names before they
// are stored, as the agent sends them.
func TestTheMergedViewShowsStdoutAndStderrInTheirOrder(t *testing.T) {
	f := newFixture(t)
	a := f.agent(t, "a1")
	b := f.running(t, a, "alpha")
	a.events(t, b.ID, aBuildsEvents()...)
	key := func(stream string) logstore.Key {
		return logstore.Key{Build: b.ID, Attempt: 1, Job: "compile", Stream: stream}
	}
	write := func(stream string, off int64, data []byte) {
		t.Helper()
		if _, err := f.logs.Write(key(stream), off, data); err != nil {
			t.Fatal(err)
		}
	}
	ord := index(
		logorder.Record{Command: "0", Start: true, Text: "make <x>"},
		logorder.Record{Command: "0", Stream: "out", Offset: 0, Length: 5},
		logorder.Record{Command: "0", Stream: "err", Offset: 0, Length: 5},
		logorder.Record{Command: "0", Stream: "out", Offset: 5, Length: 5},
	)
	write(logstore.Order, 0, ord)
	write("out", 0, []byte("out1\nout2\n"))
	write("err", 0, []byte("err1\n"))

	c := f.client(t, f.viewer)
	start, end, text := c.page(t, "/builds/"+b.ID+"/logs/compile?stream=all")
	want := `<span class="cmd">#1 $ make &lt;x&gt;</span>` + "\nout1\n" + `<span class="stderr">err1` + "\n</span>out2\n"
	if start != 0 || end != int64(len(ord)) || text != want {
		t.Errorf("the merged page [%d, %d):\n%q\nwant [0, %d):\n%q", start, end, text, len(ord), want)
	}
	if resp, _ := c.get(t, "/builds/"+b.ID+"/logs/compile?stream=ord"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("the index itself: %s, want 400", resp.Status)
	}
	_, page := c.get(t, "/builds/"+b.ID)
	if !strings.Contains(page, `/logs/compile?stream=all&amp;attempt=1"`) || strings.Contains(page, `/logs/notes?stream=all`) {
		t.Errorf("the build page offers no merged view of compile, or one of a job without an index")
	}

	// Following: the index names bytes of command 1 that are not stored yet.
	more := index(
		logorder.Record{Command: "1", Start: true, Text: "echo late"},
		logorder.Record{Command: "1", Stream: "err", Offset: 5, Length: 5},
	)
	write(logstore.Order, int64(len(ord)), more)
	s := c.stream(t, "/builds/"+b.ID+"/logs/compile/follow?stream=all&from="+strconv.Itoa(len(ord)))
	s.until(t, "#2 $ echo late")
	write("err", 5, []byte("late\n"))
	var m followMsg
	if err := json.Unmarshal([]byte(s.until(t, "late")), &m); err != nil || m.HTML != `<span class="stderr">late`+"\n</span>" {
		t.Errorf("the late bytes came as %+v, %v; want them marked stderr", m, err)
	}
	a.done(t, b.ID, events.Success)
	for {
		name, data := s.next(t)
		if name == "end" {
			if total := len(ord) + len(more); !strings.Contains(data, `"offset":`+strconv.Itoa(total)) {
				t.Errorf("the end says %s, want offset %d", data, total)
			}
			break
		}
	}
}

// A long merged view is shown a page at a time from the tail; the pages
// before join it up whole, in order.
func TestTheMergedViewIsPagedBack(t *testing.T) {
	f := newFixture(t)
	a := f.agent(t, "a1")
	b := f.running(t, a, "alpha")
	var ord []byte
	offs := map[string]int64{}
	var outs = map[string][]byte{}
	var want strings.Builder
	for i := range 6000 { // 6000 lines of 20 bytes: about two pages
		stream := []string{"out", "err"}[i%2]
		line := []byte(fmt.Sprintf("%s line %09d\n", stream, i))
		ord = logorder.Record{Command: "0", Stream: stream, Offset: offs[stream], Length: int64(len(line))}.Append(ord)
		offs[stream] += int64(len(line))
		outs[stream] = append(outs[stream], line...)
		if stream == "err" {
			want.WriteString(`<span class="stderr">` + string(line) + `</span>`)
		} else {
			want.Write(line)
		}
	}
	for stream, data := range map[string][]byte{logstore.Order: ord, "out": outs["out"], "err": outs["err"]} {
		if _, err := f.logs.Write(logstore.Key{Build: b.ID, Attempt: 1, Job: "j", Stream: stream}, 0, data); err != nil {
			t.Fatal(err)
		}
	}
	c := f.client(t, f.viewer)
	base := "/builds/" + b.ID + "/logs/j?stream=all"
	start, end, text := c.page(t, base)
	if end != int64(len(ord)) || start == 0 || len(text) < logPageSize {
		t.Fatalf("the tail page [%d, %d) of %d bytes: want a page ending at %d, not starting at 0", start, end, len(text), len(ord))
	}
	got := text
	for pages := 1; start > 0; pages++ {
		if pages > 10 {
			t.Fatal("more than 10 pages")
		}
		before := start
		var pageEnd int64
		start, pageEnd, text = c.page(t, base+"&before="+strconv.FormatInt(before, 10))
		if pageEnd != before || start >= before {
			t.Fatalf("the page before %d is [%d, %d)", before, start, pageEnd)
		}
		got = text + got
	}
	if got != want.String() {
		t.Errorf("the pages joined differ from the whole (%d bytes, want %d)", len(got), want.Len())
	}
}
