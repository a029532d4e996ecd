package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/logstore"
	"github.com/monkeyci/monkeyci/events"
)

// bigLog writes a log of n lines ("line 00000001\n", 14 bytes each) through
// the log store, a chunk of at most 1 MiB at a time, and returns its size.
func bigLog(t *testing.T, logs *logstore.Store, key logstore.Key, n int) int64 {
	t.Helper()
	var buf bytes.Buffer
	offset := int64(0)
	flush := func() {
		if _, err := logs.Write(key, offset, buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		offset += int64(buf.Len())
		buf.Reset()
	}
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&buf, "line %08d\n", i)
		if buf.Len() > logstore.MaxChunk-64 {
			flush()
		}
	}
	flush()
	return offset
}

var logPageAttrs = regexp.MustCompile(`<pre class="log-page ansi" data-start="(\d+)" data-end="(\d+)" data-size="(\d+)">`)

// page gets a page of a log and returns its start, end and text.
func (c *client) page(t *testing.T, path string) (start, end int64, text string) {
	t.Helper()
	resp, body := c.get(t, path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", path, resp.Status, body)
	}
	m := logPageAttrs.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("GET %s: no page in %.200q", path, body)
	}
	start, _ = strconv.ParseInt(m[1], 10, 64)
	end, _ = strconv.ParseInt(m[2], 10, 64)
	if h := resp.Header.Get("X-Log-Start"); h != m[1] {
		t.Errorf("X-Log-Start %q, the page says %s", h, m[1])
	}
	text = strings.TrimSuffix(strings.TrimPrefix(body, m[0]), "</pre>\n")
	return start, end, text
}

func TestAFiftyMegabyteLogIsShownByTheTailAndPagedBack(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	now := time.Now()
	b := coordinator.Build{ID: coordinator.NewID(), Repo: "alpha", Source: coordinator.Source{URL: "/x"}, State: coordinator.Ended, Result: events.Success,
		Attempt: 1, Created: now, Started: now, Ended: now}
	if err := f.store.CreateBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	key := logstore.Key{Build: b.ID, Attempt: 1, Job: "compile", Stream: "out"}
	const lines = 50<<20/14 + 1
	size := bigLog(t, f.logs, key, lines)
	c := f.client(t, f.viewer)
	base := "/builds/" + b.ID + "/logs/compile?stream=out"

	began := time.Now()
	start, end, text := c.page(t, base)
	t.Logf("the tail of a %d MB log in %v", size>>20, time.Since(began))
	if end != size || size-start > logPageSize || start%14 != 0 {
		t.Errorf("the tail is [%d, %d) of %d: want the last page, from a line's start", start, end, size)
	}
	if !strings.HasPrefix(text, "line ") || !strings.HasSuffix(text, fmt.Sprintf("line %08d\n", lines)) {
		t.Errorf("the tail runs %.20q ... %.20q", text, text[max(len(text)-20, 0):])
	}
	// Page back three times: each page ends where the one after starts,
	// and the lines run on.
	for range 3 {
		s2, e2, t2 := c.page(t, base+"&before="+strconv.FormatInt(start, 10))
		if e2 != start || start-s2 > logPageSize || s2%14 != 0 {
			t.Fatalf("the page before %d is [%d, %d)", start, s2, e2)
		}
		first, _ := strconv.Atoi(strings.TrimPrefix(strings.SplitN(text, "\n", 2)[0], "line "))
		if !strings.HasSuffix(t2, fmt.Sprintf("line %08d\n", first-1)) {
			t.Fatalf("the page before line %d ends %q", first, t2[max(len(t2)-20, 0):])
		}
		start, text = s2, t2
	}
	// The first page starts at 0.
	if s, _, text := c.page(t, base+"&before=100"); s != 0 || !strings.HasPrefix(text, "line 00000001\n") {
		t.Errorf("the first page starts at %d with %.20q", s, text)
	}

	for path, want := range map[string]int{
		base + "&before=-1":                                      http.StatusBadRequest,
		"/builds/" + b.ID + "/logs/compile?stream=nope":          http.StatusBadRequest,
		"/builds/" + b.ID + "/logs/compile?stream=out&attempt=2": http.StatusNotFound,
		"/builds/nosuch/logs/compile":                            http.StatusNotFound,
		"/builds/" + b.ID + "/logs/bad%20job":                    http.StatusBadRequest,
	} {
		if resp, _ := c.get(t, path); resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
}

func TestTheScriptsLogAndColours(t *testing.T) {
	f := newFixture(t)
	a := f.agent(t, "a1")
	b := f.running(t, a, "alpha")
	if _, err := f.logs.Write(logstore.Key{Build: b.ID, Attempt: 1, Stream: "err"}, 0, []byte("\x1b[31mred <b>\x1b[0m\n")); err != nil {
		t.Fatal(err)
	}
	_, _, text := f.client(t, f.viewer).page(t, "/builds/"+b.ID+"/logs/~script?stream=err")
	if !strings.Contains(text, "red &lt;b&gt;") || !strings.Contains(text, "<span") {
		t.Errorf("the script's log reads %q: want it escaped and coloured", text)
	}
}

func TestFollowingALogReceivesWhatIsAppended(t *testing.T) {
	f := newFixture(t)
	a := f.agent(t, "a1")
	b := f.running(t, a, "alpha")
	key := logstore.Key{Build: b.ID, Attempt: 1, Job: "compile", Stream: "out"}
	write := func(offset int64, s string) {
		if _, err := f.logs.Write(key, offset, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	write(0, "before\n")
	s := f.client(t, f.viewer).stream(t, "/builds/"+b.ID+"/logs/compile/follow?stream=out&from=7")
	write(7, "first \x1b[1mbold\x1b[0m\n")
	var m followMsg
	for m.Offset < int64(7+len("first \x1b[1mbold\x1b[0m\n")) {
		name, data := s.next(t)
		if name != "" {
			t.Fatalf("event %q before the bytes came: %s", name, data)
		}
		var part followMsg
		if err := json.Unmarshal([]byte(data), &part); err != nil {
			t.Fatal(err)
		}
		m.HTML += part.HTML
		m.Offset = part.Offset
	}
	if strings.Contains(m.HTML, "before") || !strings.Contains(m.HTML, "first <span") || !strings.Contains(m.HTML, "bold</span>") {
		t.Errorf("followed %q", m.HTML)
	}
	write(m.Offset, "second\n")
	s.until(t, "second")
	a.done(t, b.ID, events.Success)
	for {
		name, data := s.next(t)
		if name == "end" {
			if !strings.Contains(data, `"offset":`+strconv.FormatInt(m.Offset+7, 10)) {
				t.Errorf("the end says %s, want offset %d", data, m.Offset+7)
			}
			break
		}
	}
	// A follower of an ended build gets what is stored and the end.
	s = f.client(t, f.viewer).stream(t, "/builds/"+b.ID+"/logs/compile/follow?stream=out")
	if got := s.until(t, "before"); !strings.Contains(got, "second") {
		t.Errorf("following an ended build's log from 0 sent %s", got)
	}
	if name, _ := s.next(t); name != "end" {
		t.Errorf("after an ended build's log came %q, want end", name)
	}
}
