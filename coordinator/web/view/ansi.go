package view

import (
	"html/template"
	"strings"
	"unicode/utf8"
)

// ANSIToHTML renders terminal output as HTML for a <pre>: text escaped,
// SGR styles (bold, dim, italic, underline, strike, 16/256/true colours) as
// <span>s, every other escape sequence dropped. See ANSI for the details.
func ANSIToHTML(b []byte) template.HTML {
	var a ANSI
	return a.write(b, true)
}

// ANSI renders a stream of terminal output as HTML, chunk by chunk: the
// style, a partial escape sequence and a partial UTF-8 rune carry over from
// one Write to the next. Each fragment Write returns is balanced on its own
// (spans open at its end are closed, and reopened by the next), so pages
// can append fragments as they come. The zero value is ready to use.
//
// What it keeps: printable text (escaped), "\n" and "\t". "\r\n" is one
// newline; a lone "\r" (progress bars redrawing a line) also becomes a
// newline, as a log cannot overwrite what it already showed. Other control
// characters, C1 controls and every escape sequence but SGR are dropped;
// invalid UTF-8 becomes U+FFFD. An OSC, DCS, APC, PM or SOS string that
// reaches a newline before its terminator is cut there, so a stray "ESC ]"
// cannot swallow the rest of a log.
type ANSI struct {
	st      ansiState
	params  []byte // the CSI's parameter bytes
	notSGR  bool   // the CSI has private markers, intermediates or too many parameters
	cur     sgrStyle
	lastCR  bool   // the last newline came from "\r": a "\n" right after it is the same one
	partial []byte // an incomplete UTF-8 rune from the end of the last chunk
}

type ansiState uint8

const (
	stGround   ansiState = iota
	stEsc                // after ESC
	stEscInter           // after ESC and intermediate bytes, as in ESC ( B
	stCSI                // after ESC [
	stStr                // in an OSC, DCS, SOS, PM or APC string
	stStrEsc             // after ESC in such a string: "\" ends it
)

// maxParams bounds a CSI's parameters: real SGRs are far shorter, and the
// bound keeps memory flat whatever the input.
const maxParams = 128

// sgrStyle is the current graphic rendition. It is comparable, so a change
// of style is a change of span.
type sgrStyle struct {
	flags  uint8
	fg, bg ansiColor
}

const (
	fBold uint8 = 1 << iota
	fDim
	fItalic
	fUnderline
	fStrike
)

// ansiColor is a colour: one of the 16 palette colours (a class, so the
// page's theme decides) or an RGB value (an inline style).
type ansiColor struct {
	kind    uint8 // colorDefault, colorPalette or colorRGB
	n       uint8 // palette index, 0-15
	r, g, b uint8
}

const (
	colorDefault uint8 = iota
	colorPalette
	colorRGB
)

var paletteNames = [16]string{
	"black", "red", "green", "yellow", "blue", "magenta", "cyan", "white",
	"bright-black", "bright-red", "bright-green", "bright-yellow",
	"bright-blue", "bright-magenta", "bright-cyan", "bright-white",
}

// Write renders the next chunk of output.
func (a *ANSI) Write(b []byte) template.HTML { return a.write(b, false) }

// Flush ends the stream: an incomplete rune left over becomes U+FFFD and an
// incomplete escape sequence is dropped. The style is kept.
func (a *ANSI) Flush() template.HTML { return a.write(nil, true) }

// fragment is one Write's output and the span it has open.
type fragment struct {
	out  strings.Builder
	open bool
	span sgrStyle // the open span's style
}

// sync makes the open span match style s before text is written.
func (f *fragment) sync(s sgrStyle) {
	if f.open && f.span == s {
		return
	}
	if f.open {
		f.out.WriteString("</span>")
		f.open = false
	}
	if s != (sgrStyle{}) {
		s.openTag(&f.out)
		f.open, f.span = true, s
	}
}

// write renders b, which ends the stream when final. Each step takes
// what it can of b in the state it starts in, and says where the next
// starts.
func (a *ANSI) write(b []byte, final bool) template.HTML {
	if len(a.partial) > 0 {
		b = append(a.partial, b...)
		a.partial = nil
	}
	var f fragment
	f.out.Grow(len(b) + len(b)/8)
	for i := 0; i < len(b); {
		switch a.st {
		case stGround:
			i = a.text(&f, b, i, final)
		case stCSI:
			i = a.controlSequence(&f, b, i)
		default:
			i = a.escapeByte(&f, b, i)
		}
	}
	if final {
		a.st = stGround
	}
	if f.open {
		f.out.WriteString("</span>")
	}
	return template.HTML(f.out.String())
}

// text renders b from i on in the ground state: plain text, control bytes
// and runes, until an escape sequence starts or b ends.
func (a *ANSI) text(f *fragment, b []byte, i int, final bool) int {
	for i < len(b) && a.st == stGround {
		c := b[i]
		if plain(c) {
			// Most output is plain text: copy it a run at a time.
			j := i + 1
			for j < len(b) && plain(b[j]) {
				j++
			}
			f.sync(a.cur)
			a.lastCR = false
			f.out.Write(b[i:j])
			i = j
			continue
		}
		if c < utf8.RuneSelf {
			a.control(f, c)
			i++
			continue
		}
		if !final && !utf8.FullRune(b[i:]) {
			a.partial = append([]byte(nil), b[i:]...)
			return len(b)
		}
		r, size := utf8.DecodeRune(b[i:])
		i += size
		if r >= 0x80 && r <= 0x9f {
			continue // C1 controls
		}
		f.sync(a.cur)
		a.lastCR = false
		if r == utf8.RuneError && size == 1 {
			f.out.WriteString("\uFFFD")
		} else {
			f.out.Write(b[i-size : i])
		}
	}
	return i
}

// controlSequence reads b from i on in a control sequence (after ESC [),
// applying an SGR at its final byte. It returns where the sequence ended:
// past its last byte, or at a byte that aborts it and is to be read again.
func (a *ANSI) controlSequence(f *fragment, b []byte, i int) int {
	for ; i < len(b) && a.st == stCSI; i++ {
		switch c := b[i]; {
		case c >= 0x30 && c <= 0x3f:
			if c >= '<' || len(a.params) >= maxParams {
				a.notSGR = true // private (?, <, =, >) or absurdly long
			} else {
				a.params = append(a.params, c)
			}
		case c >= 0x20 && c <= 0x2f:
			a.notSGR = true
		case c >= 0x40 && c <= 0x7e:
			a.st = stGround
			if c == 'm' && !a.notSGR {
				a.applySGR()
			}
		case c == 0x1b:
			a.st = stEsc
		case c == 0x18 || c == 0x1a: // CAN, SUB: abort
			a.st = stGround
		case c < 0x20:
			a.control(f, c) // executed in place, as terminals do
		case c == 0x7f:
		default:
			a.st = stGround
			return i
		}
	}
	return i
}

// applySGR applies the SGR whose parameters were read.
func (a *ANSI) applySGR() {
	var buf [maxParams + 1]sgrParam
	a.cur = a.cur.apply(parseSGR(a.params, &buf))
}

// escapeByte reads b[i] after an ESC, or in an OSC, DCS, SOS, PM or APC
// string. It returns i+1, or i when b[i] is not part of the sequence after
// all: it ended it, and is to be read again in the state it left.
func (a *ANSI) escapeByte(f *fragment, b []byte, i int) int {
	c := b[i]
	switch a.st {
	case stEsc:
		switch {
		case c == '[':
			a.st, a.params, a.notSGR = stCSI, a.params[:0], false
		case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
			a.st = stStr
		case c >= 0x20 && c <= 0x2f:
			a.st = stEscInter
		case c >= 0x30 && c <= 0x7e:
			a.st = stGround // a two-byte sequence: ESC 7, ESC M, ESC c, ...
		case c == 0x1b || c == 0x7f:
		case c < 0x20:
			a.st = stGround
			a.control(f, c)
		default:
			a.st = stGround // not an escape after all: read c as text
			return i
		}

	case stEscInter:
		switch {
		case c >= 0x20 && c <= 0x2f || c == 0x7f:
		case c >= 0x30 && c <= 0x7e:
			a.st = stGround
		case c < 0x20:
			a.st = stGround
			a.control(f, c)
		default:
			a.st = stGround
			return i
		}

	case stStr:
		switch c {
		case 0x07: // BEL ends an OSC
			a.st = stGround
		case 0x1b:
			a.st = stStrEsc
		case '\n', 0x18, 0x1a:
			a.st = stGround
			a.control(f, c)
		}

	case stStrEsc:
		if c != '\\' { // ST
			a.st = stEsc // a new sequence ends the string
			return i
		}
		a.st = stGround
	}
	return i + 1
}

// plain reports whether c is printable ASCII that needs no escaping.
func plain(c byte) bool {
	return c >= 0x20 && c < 0x7f && c != '<' && c != '>' && c != '&' && c != '"' && c != '\''
}

// control handles an ASCII byte in the ground state.
func (a *ANSI) control(f *fragment, c byte) {
	switch {
	case c == 0x1b:
		a.st = stEsc
	case c == '\n':
		if a.lastCR {
			a.lastCR = false
			return
		}
		f.sync(a.cur)
		f.out.WriteByte('\n')
	case c == '\r':
		if !a.lastCR {
			f.sync(a.cur)
			f.out.WriteByte('\n')
			a.lastCR = true
		}
	case c == '\t':
		f.sync(a.cur)
		f.out.WriteByte('\t')
		a.lastCR = false
	case c < 0x20 || c == 0x7f:
		// Other controls (BEL, BS, NUL, ...) have nothing to show.
	default:
		f.sync(a.cur)
		a.lastCR = false
		switch c {
		case '<':
			f.out.WriteString("&lt;")
		case '>':
			f.out.WriteString("&gt;")
		case '&':
			f.out.WriteString("&amp;")
		case '"':
			f.out.WriteString("&#34;")
		case '\'':
			f.out.WriteString("&#39;")
		default:
			f.out.WriteByte(c)
		}
	}
}

// sgrParam is one SGR parameter: -1 when empty; sub marks one that
// followed a ':' (a sub-parameter, as in 38:2::r:g:b).
type sgrParam struct {
	v   int
	sub bool
}

// parseSGR splits an SGR's parameter bytes (digits, ';' and ':' only, at
// most maxParams of them) into buf. A huge number is clamped: it is out of
// every range anyway.
func parseSGR(p []byte, buf *[maxParams + 1]sgrParam) []sgrParam {
	ps := buf[:1]
	ps[0] = sgrParam{v: -1}
	for _, c := range p {
		switch c {
		case ';', ':':
			ps = append(ps, sgrParam{v: -1, sub: c == ':'})
		default:
			v := &ps[len(ps)-1].v
			*v = min(max(*v, 0)*10+int(c-'0'), 1<<20)
		}
	}
	return ps
}

// apply returns s changed by an SGR's parameters, such as "1;31" or
// "38;2;255;128;0" or "38:5:208", as parseSGR splits them. Unknown codes are ignored; a colour with
// a value out of range is ignored whole.
func (s sgrStyle) apply(ps []sgrParam) sgrStyle {
	for k := 0; k < len(ps); k++ {
		code := max(ps[k].v, 0)
		end := k + 1 // ps[k+1:end] are code's sub-parameters
		for end < len(ps) && ps[end].sub {
			end++
		}
		sub := ps[k+1 : end]
		switch {
		case code == 0:
			s = sgrStyle{}
		case code == 1:
			s.flags |= fBold
		case code == 2:
			s.flags |= fDim
		case code == 3:
			s.flags |= fItalic
		case code == 4:
			if len(sub) > 0 && sub[0].v == 0 { // 4:0 is "no underline"
				s.flags &^= fUnderline
			} else {
				s.flags |= fUnderline
			}
		case code == 9:
			s.flags |= fStrike
		case code == 22:
			s.flags &^= fBold | fDim
		case code == 23:
			s.flags &^= fItalic
		case code == 24:
			s.flags &^= fUnderline
		case code == 29:
			s.flags &^= fStrike
		case code >= 30 && code <= 37:
			s.fg = ansiColor{kind: colorPalette, n: uint8(code - 30)}
		case code == 39:
			s.fg = ansiColor{}
		case code >= 40 && code <= 47:
			s.bg = ansiColor{kind: colorPalette, n: uint8(code - 40)}
		case code == 49:
			s.bg = ansiColor{}
		case code >= 90 && code <= 97:
			s.fg = ansiColor{kind: colorPalette, n: uint8(code - 90 + 8)}
		case code >= 100 && code <= 107:
			s.bg = ansiColor{kind: colorPalette, n: uint8(code - 100 + 8)}
		case code == 38 || code == 48 || code == 58:
			var c ansiColor
			var ok bool
			if len(sub) > 0 { // colon form: 38:5:n, 38:2:r:g:b or 38:2:<space>:r:g:b
				if sub[0].v == 2 && len(sub) >= 5 {
					sub = append([]sgrParam{sub[0]}, sub[2:]...)
				}
				c, _, ok = extColor(sub)
			} else { // semicolon form: the arguments are the next parameters
				var used int
				c, used, ok = extColor(ps[end:])
				end += used
			}
			if ok && code == 38 {
				s.fg = c
			} else if ok && code == 48 {
				s.bg = c
			} // 58 is the underline colour: read, not drawn
		}
		k = end - 1
	}
	return s
}

// extColor reads an extended colour, "5;n" or "2;r;g;b", returning how many
// of args it used and whether the colour is valid.
func extColor(args []sgrParam) (ansiColor, int, bool) {
	if len(args) == 0 {
		return ansiColor{}, 0, false
	}
	val := func(p sgrParam) (uint8, bool) { v := max(p.v, 0); return uint8(v), v <= 255 }
	switch args[0].v {
	case 5:
		if len(args) < 2 {
			return ansiColor{}, len(args), false
		}
		n, ok := val(args[1])
		return color256(n), 2, ok
	case 2:
		if len(args) < 4 {
			return ansiColor{}, len(args), false
		}
		r, okR := val(args[1])
		g, okG := val(args[2])
		b, okB := val(args[3])
		return ansiColor{kind: colorRGB, r: r, g: g, b: b}, 4, okR && okG && okB
	}
	return ansiColor{}, 1, false
}

// color256 is xterm's 256-colour palette: the 16 named colours, a 6x6x6
// cube and a grey ramp.
func color256(n uint8) ansiColor {
	switch {
	case n < 16:
		return ansiColor{kind: colorPalette, n: n}
	case n < 232:
		level := func(v uint8) uint8 {
			if v == 0 {
				return 0
			}
			return 55 + 40*v
		}
		n -= 16
		return ansiColor{kind: colorRGB, r: level(n / 36), g: level(n / 6 % 6), b: level(n % 6)}
	default:
		v := 8 + 10*(n-232)
		return ansiColor{kind: colorRGB, r: v, g: v, b: v}
	}
}

// openTag writes the <span> for s: classes for attributes and palette
// colours, an inline style only for RGB colours, made of validated bytes.
func (s sgrStyle) openTag(w *strings.Builder) {
	w.WriteString("<span")
	sep := ` class="`
	class := func(prefix, name string) {
		w.WriteString(sep)
		w.WriteString(prefix)
		w.WriteString(name)
		sep = " "
	}
	for _, f := range [...]struct {
		bit  uint8
		name string
	}{{fBold, "bold"}, {fDim, "dim"}, {fItalic, "italic"}, {fUnderline, "underline"}, {fStrike, "strike"}} {
		if s.flags&f.bit != 0 {
			class("ansi-", f.name)
		}
	}
	if s.fg.kind == colorPalette {
		class("ansi-fg-", paletteNames[s.fg.n&15])
	}
	if s.bg.kind == colorPalette {
		class("ansi-bg-", paletteNames[s.bg.n&15])
	}
	if sep == " " {
		w.WriteByte('"')
	}
	sep = ` style="`
	for _, c := range [...]struct {
		col  ansiColor
		prop string
	}{{s.fg, "color:#"}, {s.bg, "background-color:#"}} {
		if c.col.kind == colorRGB {
			w.WriteString(sep)
			w.WriteString(c.prop)
			for _, v := range [...]uint8{c.col.r, c.col.g, c.col.b} {
				w.WriteByte("0123456789abcdef"[v>>4])
				w.WriteByte("0123456789abcdef"[v&15])
			}
			sep = ";"
		}
	}
	if sep == ";" {
		w.WriteByte('"')
	}
	w.WriteByte('>')
}

// ANSICSS styles ANSIToHTML's classes, with the usual VS Code-like palette
// for a light background; pages may override the colours.
const ANSICSS = `
.ansi-bold { font-weight: bold; }
.ansi-dim { opacity: .7; }
.ansi-italic { font-style: italic; }
.ansi-underline { text-decoration: underline; }
.ansi-strike { text-decoration: line-through; }
.ansi-underline.ansi-strike { text-decoration: underline line-through; }
.ansi-fg-black { color: #000000; } .ansi-bg-black { background-color: #000000; }
.ansi-fg-red { color: #cd3131; } .ansi-bg-red { background-color: #cd3131; }
.ansi-fg-green { color: #00bc00; } .ansi-bg-green { background-color: #00bc00; }
.ansi-fg-yellow { color: #949800; } .ansi-bg-yellow { background-color: #949800; }
.ansi-fg-blue { color: #0451a5; } .ansi-bg-blue { background-color: #0451a5; }
.ansi-fg-magenta { color: #bc05bc; } .ansi-bg-magenta { background-color: #bc05bc; }
.ansi-fg-cyan { color: #0598bc; } .ansi-bg-cyan { background-color: #0598bc; }
.ansi-fg-white { color: #555555; } .ansi-bg-white { background-color: #e5e5e5; }
.ansi-fg-bright-black { color: #666666; } .ansi-bg-bright-black { background-color: #666666; }
.ansi-fg-bright-red { color: #cd3131; } .ansi-bg-bright-red { background-color: #f14c4c; }
.ansi-fg-bright-green { color: #14ce14; } .ansi-bg-bright-green { background-color: #23d18b; }
.ansi-fg-bright-yellow { color: #b5ba00; } .ansi-bg-bright-yellow { background-color: #f5f543; }
.ansi-fg-bright-blue { color: #0451a5; } .ansi-bg-bright-blue { background-color: #3b8eea; }
.ansi-fg-bright-magenta { color: #bc05bc; } .ansi-bg-bright-magenta { background-color: #d670d6; }
.ansi-fg-bright-cyan { color: #0598bc; } .ansi-bg-bright-cyan { background-color: #29b8db; }
.ansi-fg-bright-white { color: #a5a5a5; } .ansi-bg-bright-white { background-color: #ffffff; }
`
