package pipeline

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDepth bounds nesting; a build file needs about four levels.
const maxDepth = 100

// kind is the shape of a value in a build file, whatever its format.
type kind int

const (
	kNull kind = iota
	kBool
	kInt
	kFloat
	kString
	kKeyword // EDN keyword; text is its name without ':'
	kSymbol  // EDN symbol
	kOther   // a value no key accepts: tagged values, characters, timestamps...
	kMap
	kList
)

// node is a value read from YAML, JSON or EDN with the place it was written,
// so that every format goes through one decoder and gives the same errors.
type node struct {
	kind kind
	pos  Position
	// text is a string's value, or the source text of a number or bool.
	text string
	// what describes a kOther value in errors ("a tagged value #inst").
	what string
	b    bool
	i    int64 // kInt, when !big
	big  bool  // kInt too large for int64
	f    float64
	// keys and vals of a kMap, in source order.
	keys, vals []*node
	// items of a kList.
	items []*node
}

// describe names n's shape for "expected X, got Y".
func (n *node) describe() string {
	switch n.kind {
	case kNull:
		return "null"
	case kBool:
		return "a bool"
	case kInt, kFloat:
		return "a number"
	case kString:
		return "a string"
	case kKeyword:
		return "a keyword"
	case kSymbol:
		return "a symbol"
	case kMap:
		return "a map"
	case kList:
		return "a list"
	}
	if n.what != "" {
		return n.what
	}
	return "an unsupported value"
}

// posTracker turns byte offsets into line:column (columns count characters),
// cheaply when offsets only grow, as they do while reading a file.
type posTracker struct {
	file      string
	data      []byte
	off       int
	line, col int
}

func newPosTracker(file string, data []byte) *posTracker {
	return &posTracker{file: file, data: data, line: 1, col: 1}
}

func (t *posTracker) at(off int) Position {
	off = min(max(off, 0), len(t.data))
	if off < t.off {
		t.off, t.line, t.col = 0, 1, 1
	}
	for t.off < off {
		r, size := utf8.DecodeRune(t.data[t.off:])
		if t.off+size > off { // offset inside a character: stay on it
			break
		}
		t.off += size
		if r == 0xfeff && t.off == size {
			continue // a byte order mark takes no column
		}
		if isBreak(r, t.data[t.off:]) {
			t.line++
			t.col = 1
		} else {
			t.col++
		}
	}
	return Position{File: t.file, Line: t.line, Column: t.col}
}

// isBreak tells whether r, followed by rest, ends a line. The breaks are
// YAML's (libyaml's), so that lines count alike in every format: \n, \r\n,
// a lone \r, NEL, LS and PS.
func isBreak(r rune, rest []byte) bool {
	switch r {
	case '\n', 0x85, 0x2028, 0x2029:
		return true
	case '\r':
		return len(rest) == 0 || rest[0] != '\n'
	}
	return false
}

// lineStart is the position of the first non-blank character of line (1-based).
func lineStart(file string, data []byte, line int) Position {
	t := newPosTracker(file, data)
	step := func() {
		_, size := utf8.DecodeRune(data[t.off:])
		t.at(t.off + size)
	}
	for t.off < len(data) && t.line < line {
		step()
	}
	for t.off < len(data) && (data[t.off] == ' ' || data[t.off] == '\t') {
		step()
	}
	return t.at(t.off)
}

// setNumber makes n the number written as text (JSON's syntax).
func setNumber(n *node, text string) {
	n.text = text
	if !strings.ContainsAny(text, ".eE") {
		i, err := strconv.ParseInt(text, 10, 64)
		n.kind, n.i, n.big = kInt, i, err != nil
		return
	}
	f, _ := strconv.ParseFloat(text, 64) // out of range gives ±Inf: too large anyway
	n.kind, n.f = kFloat, f
}
