package view

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

var ansiCases = []struct {
	name, in, want string
}{
	{"plain", "hello, world\n", "hello, world\n"},
	{"colour and reset", "\x1b[31mred\x1b[0m plain", `<span class="ansi-fg-red">red</span> plain`},
	{"empty reset", "\x1b[32mok\x1b[m.", `<span class="ansi-fg-green">ok</span>.`},
	{"bold and fg reset", "\x1b[1;32mok\x1b[39m bold\x1b[22m.", `<span class="ansi-bold ansi-fg-green">ok</span><span class="ansi-bold"> bold</span>.`},
	{"attributes", "\x1b[2;3;4;9mx\x1b[23;24;29my\x1b[22mz", `<span class="ansi-dim ansi-italic ansi-underline ansi-strike">x</span><span class="ansi-dim">y</span>z`},
	{"bright and backgrounds", "\x1b[90;107mx\x1b[49;44my", `<span class="ansi-fg-bright-black ansi-bg-bright-white">x</span><span class="ansi-fg-bright-black ansi-bg-blue">y</span>`},
	{"256 colour", "\x1b[38;5;208mx", `<span style="color:#ff8700">x</span>`},
	{"256 low is a class", "\x1b[38;5;3;48;5;9mx", `<span class="ansi-fg-yellow ansi-bg-bright-red">x</span>`},
	{"256 grey", "\x1b[48;5;244mx", `<span style="background-color:#808080">x</span>`},
	{"truecolor", "\x1b[38;2;255;128;0;48;2;1;2;3mx", `<span style="color:#ff8000;background-color:#010203">x</span>`},
	{"truecolor with colons", "\x1b[38:2::255:0:0mx\x1b[38:2:0:255:0my", `<span style="color:#ff0000">x</span><span style="color:#00ff00">y</span>`},
	{"256 with colons then bold", "\x1b[38:5:208;1mx", `<span class="ansi-bold" style="color:#ff8700">x</span>`},
	{"truecolor out of range", "\x1b[38;2;300;0;0mx\x1b[1my", `x<span class="ansi-bold">y</span>`},
	{"huge number", "\x1b[38;5;99999999999999999999mx", `x`},
	{"truncated extended colour", "\x1b[38;5mx", "x"},
	{"underline colour ignored", "\x1b[58;2;1;2;3;4mx", `<span class="ansi-underline">x</span>`},
	{"curly underline and none", "\x1b[4:3mx\x1b[4:0my", `<span class="ansi-underline">x</span>y`},
	{"unknown codes", "\x1b[5;7;53mx", "x"},
	{"cursor moves and erase", "\x1b[2K\x1b[1G\x1b[3Adone\x1b[0K", "done"},
	{"private modes", "\x1b[?25lhidden\x1b[?25h\x1b[?2004h", "hidden"},
	{"private m is not SGR", "\x1b[>4;2mX", "X"},
	{"intermediate m is not SGR", "\x1b[1 mX", "X"},
	{"OSC with BEL", "\x1b]0;title\x07after", "after"},
	{"OSC 8 hyperlink with ST", "\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\", "link"},
	{"OSC cut at newline", "\x1b]0;no end\nnext", "\nnext"},
	{"DCS and APC", "a\x1bPq#0;2;0;0;0\x1b\\b\x1b_apc\x1b\\c", "abc"},
	{"charset and two-byte escapes", "\x1b(Bok\x1b7\x1b8\x1bM\x1b=", "ok"},
	{"ESC then text byte", "\x1b\xc3\xa9", "é"},
	{"CSI aborted by CAN", "\x1b[31\x18x", "x"},
	{"CSI restarted by ESC", "\x1b[31\x1b[32mx", `<span class="ansi-fg-green">x</span>`},
	{"newline inside CSI", "\x1b[3\n1mx", "\n" + `<span class="ansi-fg-red">x</span>`},
	{"unfinished escape dropped", "x\x1b[31", "x"},
	{"lone ESC dropped", "x\x1b", "x"},
	{"script injection", "<script>alert('x')</script>", "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"},
	{"coloured injection", "\x1b[31m<b>\"&", `<span class="ansi-fg-red">&lt;b&gt;&#34;&amp;</span>`},
	{"CRLF", "a\r\nb\r\n", "a\nb\n"},
	{"lone CR", "10%\r50%\r\r\n", "10%\n50%\n"},
	{"CR then erase then LF", "a\r\x1b[K\nb", "a\nb"},
	{"controls dropped", "a\x00\x07\x08\x7fb\tc", "ab\tc"},
	{"C1 dropped", "a\u009b31mb", "a31mb"},
	{"invalid UTF-8", "bad \xff\xfe utf8 \xe2\x82", "bad \uFFFD\uFFFD utf8 \uFFFD\uFFFD"},
	{"valid UTF-8", "ünïcødé ✓ 🐒", "ünïcødé ✓ 🐒"},
	{"newline keeps style", "\x1b[41ma\nb", `<span class="ansi-bg-red">a` + "\n" + `b</span>`},
	{"no empty spans", "\x1b[31m\x1b[0m\x1b[1m", ""},
}

func TestANSIToHTML(t *testing.T) {
	for _, c := range ansiCases {
		t.Run(c.name, func(t *testing.T) {
			got := string(ANSIToHTML([]byte(c.in)))
			if got != c.want {
				t.Errorf("ANSIToHTML(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
			if err := checkHTML(got); err != "" {
				t.Error(err)
			}
		})
	}
}

// Any split of the input, fed to Write in two chunks, renders the same
// styled text as the whole, and each fragment is balanced on its own.
func TestANSIStreamingSplits(t *testing.T) {
	for _, c := range ansiCases {
		whole := styledText(string(ANSIToHTML([]byte(c.in))))
		for cut := 0; cut <= len(c.in); cut++ {
			var a ANSI
			one, two, end := a.Write([]byte(c.in[:cut])), a.Write([]byte(c.in[cut:])), a.Flush()
			for _, frag := range []string{string(one), string(two), string(end)} {
				if err := checkHTML(frag); err != "" {
					t.Fatalf("%s cut at %d: %s", c.name, cut, err)
				}
			}
			if got := styledText(string(one + two + end)); got != whole {
				t.Errorf("%s cut at %d:\n got %q\nwant %q", c.name, cut, got, whole)
			}
		}
	}
}

func TestANSIStreaming(t *testing.T) {
	var a ANSI
	steps := []struct{ in, want string }{
		{"\x1b[3", ""},
		{"1mred", `<span class="ansi-fg-red">red</span>`},
		{" more\n", `<span class="ansi-fg-red"> more` + "\n</span>"},
		{"\xc3", ""}, // half an é
		{"\xa9\x1b[0m!", `<span class="ansi-fg-red">é</span>!`},
		{"\x1b]0;ti", ""},
		{"tle\x07x", "x"},
		{"\r", "\n"},
		{"\n", ""}, // the CR's newline already
		{"\xe2\x82", ""},
		{"", ""},
	}
	for i, s := range steps {
		if got := string(a.Write([]byte(s.in))); got != s.want {
			t.Errorf("step %d Write(%q) = %q, want %q", i, s.in, got, s.want)
		}
	}
	if got := string(a.Flush()); got != "\uFFFD\uFFFD" {
		t.Errorf("Flush = %q, want two replacement characters", got)
	}
}

var spanTag = regexp.MustCompile(`^<span(?: class="[a-z0-9 -]+")?(?: style="[a-z:#0-9;-]+")?>$`)

// checkHTML reports what is wrong with ANSI output: a '<' or '>' that is
// not one of our tags, a tag we do not write, nested or unbalanced spans,
// invalid UTF-8.
func checkHTML(s string) string {
	if !utf8.ValidString(s) {
		return "invalid UTF-8 in " + s
	}
	open := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '>', '"':
			return "raw " + string(s[i]) + " in " + s
		case '<':
			j := strings.IndexByte(s[i:], '>')
			if j < 0 {
				return "unclosed tag in " + s
			}
			tag := s[i : i+j+1]
			switch {
			case tag == "</span>":
				if !open {
					return "stray </span> in " + s
				}
				open = false
			case spanTag.MatchString(tag):
				if open {
					return "nested span in " + s
				}
				open = true
			default:
				return "unexpected tag " + tag + " in " + s
			}
			i += j
		}
	}
	if open {
		return "unclosed span in " + s
	}
	return ""
}

// styledText flattens ANSI output to its characters, each marked with the
// span it is in, so that outputs differing only in where spans are closed
// and reopened compare equal.
func styledText(s string) string {
	var b strings.Builder
	cur, last := "", "\x00"
	for i := 0; i < len(s); i++ {
		if s[i] == '<' {
			j := strings.IndexByte(s[i:], '>')
			if tag := s[i : i+j+1]; tag == "</span>" {
				cur = ""
			} else {
				cur = tag
			}
			i += j
			continue
		}
		if cur != last {
			b.WriteString("[" + cur + "]")
			last = cur
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func FuzzANSI(f *testing.F) {
	for _, c := range ansiCases {
		f.Add([]byte(c.in), uint16(len(c.in)/2))
	}
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		whole := string(ANSIToHTML(in))
		if err := checkHTML(whole); err != "" {
			t.Fatalf("ANSIToHTML(%q): %s", in, err)
		}
		k := int(cut) % (len(in) + 1)
		var a ANSI
		var parts []string
		for _, p := range [][]byte{in[:k], in[k:]} {
			parts = append(parts, string(a.Write(p)))
		}
		parts = append(parts, string(a.Flush()))
		for _, p := range parts {
			if err := checkHTML(p); err != "" {
				t.Fatalf("Write of %q cut at %d: %s", in, k, err)
			}
		}
		if got, want := styledText(strings.Join(parts, "")), styledText(whole); got != want {
			t.Fatalf("%q cut at %d renders\n%q\nnot\n%q", in, k, got, want)
		}
	})
}
