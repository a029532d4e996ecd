package logorder

import (
	"errors"
	"strings"
	"testing"
)

func TestRecordsRoundTrip(t *testing.T) {
	for _, r := range []Record{
		{Command: "0", Start: true, Text: "make test"},
		{Command: "12", Start: true, Text: "echo \"a\nb\" >&2; printf '\\x00'"},
		{Command: "3", Start: true},
		{Command: "0", Stream: "out", Offset: 120, Length: 57},
		{Command: "", Stream: "err", Offset: 0, Length: 12},
	} {
		b := r.Append(nil)
		if strings.Count(string(b), "\n") != 1 || b[len(b)-1] != '\n' {
			t.Errorf("%+v: %q is not one line", r, b)
		}
		got, err := Parse(string(b[:len(b)-1]))
		if err != nil || got != r {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", b, got, err, r)
		}
	}
}

func TestALongCommandIsCutToALine(t *testing.T) {
	b := Record{Command: "0", Start: true, Text: strings.Repeat("é", MaxLine)}.Append(nil)
	if len(b) > MaxLine {
		t.Errorf("a record of %d bytes, want at most %d", len(b), MaxLine)
	}
	r, err := Parse(string(b[:len(b)-1]))
	if err != nil || !strings.HasSuffix(r.Text, "…") || !strings.HasPrefix(r.Text, "éé") {
		t.Errorf("Parse = %q, %v; want the text cut with an ellipsis", r.Text, err)
	}
}

func TestBadRecordsAreRefused(t *testing.T) {
	for _, line := range []string{
		"", "o", "o 0", "o 0 1", "o 0 1 0", "o 0 -1 3", "o 00 1 2", "o x 1 2", "o 0 1 2 3",
		"x 0 1 2", "c - \"x\"", "c 0 x", "c 0", "e 0 1 99999999999999999999",
	} {
		if r, err := Parse(line); !errors.Is(err, ErrBadRecord) {
			t.Errorf("Parse(%q) = %+v, %v; want ErrBadRecord", line, r, err)
		}
	}
}

func TestNumbersCountFromOne(t *testing.T) {
	for in, want := range map[string]string{"0": "1", "9": "10", "": "", "x": "x", "01": "01"} {
		if got := Number(in); got != want {
			t.Errorf("Number(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHeadings(t *testing.T) {
	for _, c := range []struct{ cmd, text, want string }{
		{"0", "make test", "#1 $ make test"},
		{"4", "  for f in *; do\n  echo $f\ndone\n", "#5 $ for f in *; do …"},
		{"1", "echo hi\n", "#2 $ echo hi"},
	} {
		if got := Heading(c.cmd, c.text); got != c.want {
			t.Errorf("Heading(%q, %q) = %q, want %q", c.cmd, c.text, got, c.want)
		}
	}
}

// Whatever a line holds, Parse answers without panicking, and what it
// accepts it writes back the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"c 0 \"make\"", "o 1 2 3", "e - 0 1", "c 0 \"\\xff\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := Parse(line)
		if err != nil || len(r.Text) > MaxLine-64 { // a long text is cut
			return
		}
		b := r.Append(nil)
		again, err := Parse(string(b[:len(b)-1]))
		if err != nil || again != r {
			t.Errorf("%q parsed as %+v, written %q, parsed again %+v, %v", line, r, b, again, err)
		}
	})
}
