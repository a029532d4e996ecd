package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode"
	"unicode/utf8"

	"olympos.io/encoding/edn"
)

// parseEDN reads every top-level form of an EDN file into positioned nodes.
// olympos.io/encoding/edn gives no positions (and its syntax error offsets
// drift), so a small reader here splits the text into forms and tokens and
// records where each starts; olympos checks and decodes every token.
func parseEDN(file string, data []byte) ([]*node, error) {
	r := &ednReader{src: data, pt: newPosTracker(file, data)}
	if bytes.HasPrefix(data, utf8BOM) {
		r.off = len(utf8BOM)
	}
	var forms []*node
	for {
		n, err := r.next(0)
		if err != nil {
			return nil, err
		}
		if n == nil {
			if r.off >= len(r.src) {
				return forms, nil
			}
			return nil, r.errAt(r.off, "unexpected %q, expected a map or a vector", r.src[r.off])
		}
		forms = append(forms, n)
	}
}

type ednReader struct {
	src []byte
	off int
	pt  *posTracker
}

func (r *ednReader) errAt(off int, format string, args ...any) error {
	return &Error{Pos: r.pt.at(off), Msg: "invalid EDN: " + fmt.Sprintf(format, args...)}
}

func ednDelim(c rune) bool {
	return unicode.IsSpace(c) || strings.ContainsRune(",\"{}[]();\\", c)
}

func (r *ednReader) skipSpace() {
	for r.off < len(r.src) {
		c, size := utf8.DecodeRune(r.src[r.off:])
		switch {
		case c == ';':
			if i := bytes.IndexByte(r.src[r.off:], '\n'); i >= 0 {
				r.off += i + 1
			} else {
				r.off = len(r.src)
			}
		case unicode.IsSpace(c) || c == ',':
			r.off += size
		default:
			return
		}
	}
}

// next reads the next form, skipping blanks, comments and #_ discards. At
// the end of the input or at a closing bracket it returns nil, nil.
func (r *ednReader) next(depth int) (*node, error) {
	if depth > maxDepth {
		return nil, r.errAt(r.off, "nested too deeply")
	}
	for {
		r.skipSpace()
		if r.off >= len(r.src) {
			return nil, nil
		}
		switch r.src[r.off] {
		case ')', ']', '}':
			return nil, nil
		case '#':
			if r.off+1 < len(r.src) && r.src[r.off+1] == '_' {
				start := r.off
				r.off += 2
				n, err := r.next(depth + 1)
				if err != nil {
					return nil, err
				}
				if n == nil {
					return nil, r.errAt(start, "#_ must be followed by a form to discard")
				}
				continue
			}
		}
		return r.form(depth)
	}
}

func (r *ednReader) form(depth int) (*node, error) {
	start := r.off
	pos := r.pt.at(start)
	switch r.src[r.off] {
	case '{':
		return r.coll(depth, start, 1, '}', kMap)
	case '[':
		return r.coll(depth, start, 1, ']', kList)
	case '(':
		return r.coll(depth, start, 1, ')', kList)
	case '#':
		if r.off+1 < len(r.src) && r.src[r.off+1] == '{' {
			return r.coll(depth, start, 2, '}', kList) // a set reads as a list
		}
		tag := r.atom()
		if start+1 >= len(r.src) {
			return nil, r.errAt(start, "unexpected end after '#', expected a tag, #{ or #_")
		}
		if c, _ := utf8.DecodeRune(r.src[start+1:]); !unicode.IsLetter(c) {
			return nil, r.errAt(start, "unexpected %q after '#', expected a tag, #{ or #_", c)
		}
		if _, err := ednDecode([]byte(tag + " 0")); errors.As(err, new(*edn.SyntaxError)) {
			return nil, r.errAt(start, "invalid tag %s: %v", tag, err)
		}
		v, err := r.next(depth + 1)
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, r.errAt(start, "tag %s must be followed by a value", tag)
		}
		return &node{kind: kOther, pos: pos, what: "a tagged value " + tag}, nil
	case '"':
		r.off++
		for r.off < len(r.src) && r.src[r.off] != '"' {
			if r.src[r.off] == '\\' {
				r.off++
			}
			r.off++
		}
		if r.off >= len(r.src) {
			return nil, r.errAt(start, "unterminated string, expected a closing '\"'")
		}
		r.off++
	case '\\':
		_, size := utf8.DecodeRune(r.src[r.off+1:])
		r.off += 1 + size
		r.atom()
	default:
		r.atom()
	}
	return r.scalar(start, pos)
}

// atom advances over a token up to the next delimiter and returns it.
func (r *ednReader) atom() string {
	start := r.off
	for r.off < len(r.src) {
		c, size := utf8.DecodeRune(r.src[r.off:])
		if ednDelim(c) {
			break
		}
		r.off += size
	}
	return string(r.src[start:r.off])
}

// coll reads the forms of a map, vector, list or set up to closer.
func (r *ednReader) coll(depth, start, open int, closer byte, k kind) (*node, error) {
	opener := string(r.src[start : start+open])
	n := &node{kind: k, pos: r.pt.at(start)}
	r.off += open
	var items []*node
	for {
		item, err := r.next(depth + 1)
		if err != nil {
			return nil, err
		}
		if item != nil {
			items = append(items, item)
			continue
		}
		if r.off >= len(r.src) {
			return nil, &Error{Pos: n.pos, Msg: fmt.Sprintf("invalid EDN: unclosed %q, expected %q", opener, closer)}
		}
		if c := r.src[r.off]; c != closer {
			return nil, r.errAt(r.off, "unexpected %q, expected %q to close the %q at %d:%d",
				c, closer, opener, n.pos.Line, n.pos.Column)
		}
		r.off++
		break
	}
	if k != kMap {
		n.items = items
		return n, nil
	}
	if len(items)%2 != 0 {
		return nil, &Error{Pos: items[len(items)-1].pos, Msg: "invalid EDN: map key without a value"}
	}
	for i := 0; i < len(items); i += 2 {
		n.keys = append(n.keys, items[i])
		n.vals = append(n.vals, items[i+1])
	}
	return n, nil
}

// scalar decodes the token src[start:off] with olympos.
func (r *ednReader) scalar(start int, pos Position) (*node, error) {
	tok := r.src[start:r.off]
	v, err := ednDecode(tok)
	if err != nil {
		var se *edn.SyntaxError
		if !errors.As(err, &se) {
			return nil, &Error{Pos: pos, Msg: fmt.Sprintf("invalid EDN value %q: %v", tok, err)}
		}
		// Within one token olympos counts runes right, the offending one included.
		runes := int(se.Offset)
		if !strings.HasPrefix(se.Error(), "unexpected end") {
			runes--
		}
		off := start
		for ; runes > 0 && off < r.off; runes-- {
			_, size := utf8.DecodeRune(r.src[off:])
			off += size
		}
		return nil, r.errAt(off, "%s", se.Error())
	}
	n := &node{pos: pos, text: string(tok)}
	switch v := v.(type) {
	case nil:
		n.kind = kNull
	case bool:
		n.kind, n.b = kBool, v
	case int64:
		n.kind, n.i = kInt, v
	case big.Int:
		n.kind, n.big = kInt, true
		if v.IsInt64() {
			n.i, n.big = v.Int64(), false
		}
	case float64:
		n.kind, n.f = kFloat, v
	case string:
		n.kind, n.text = kString, v
	case edn.Keyword:
		n.kind, n.text = kKeyword, string(v)
	case edn.Symbol:
		n.kind, n.text = kSymbol, string(v)
	case rune:
		n.kind, n.what = kOther, "a character"
	default:
		n.kind, n.what = kOther, fmt.Sprintf("an unsupported value %q", tok)
	}
	return n, nil
}

func ednDecode(tok []byte) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cannot decode: %v", p)
		}
	}()
	err = edn.Unmarshal(tok, &v)
	return v, err
}
