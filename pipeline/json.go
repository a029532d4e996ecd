package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// parseJSON reads a JSON file into positioned nodes: encoding/json checks
// the syntax, and its token stream, whose offsets we track, gives positions.
func parseJSON(file string, data []byte) ([]*node, error) {
	base := 0
	if bytes.HasPrefix(data, utf8BOM) {
		base = len(utf8BOM) // encoding/json rejects a BOM; offsets stay in the file's terms
	}
	body := data[base:]
	pt := newPosTracker(file, data)
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		var se *json.SyntaxError
		if !errors.As(err, &se) {
			return nil, &Error{Pos: pt.at(base), Msg: "invalid JSON: " + err.Error()}
		}
		off := int(se.Offset)
		if strings.HasPrefix(se.Error(), "invalid character") {
			off-- // Offset counts the offending byte itself
		}
		return nil, &Error{Pos: pt.at(base + off), Msg: "invalid JSON: " + se.Error()}
	}
	r := &jsonReader{dec: json.NewDecoder(bytes.NewReader(body)), body: body, base: base, pt: pt}
	r.dec.UseNumber()
	n, err := r.value(0)
	if err != nil {
		return nil, err
	}
	return []*node{n}, nil
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

type jsonReader struct {
	dec  *json.Decoder
	body []byte
	base int
	pt   *posTracker
}

// start is the position of the next token: the decoder's offset is just past
// the previous one, before any blanks, ',' or ':'.
func (r *jsonReader) start() Position {
	off := int(r.dec.InputOffset())
	for off < len(r.body) && strings.IndexByte(" \t\r\n,:", r.body[off]) >= 0 {
		off++
	}
	return r.pt.at(r.base + off)
}

func (r *jsonReader) fail(pos Position, err error) error {
	return &Error{Pos: pos, Msg: "invalid JSON: " + err.Error()}
}

func (r *jsonReader) value(depth int) (*node, error) {
	pos := r.start()
	if depth > maxDepth {
		return nil, &Error{Pos: pos, Msg: "invalid JSON: nested too deeply"}
	}
	tok, err := r.dec.Token()
	if err != nil {
		return nil, r.fail(pos, err)
	}
	n := &node{pos: pos}
	switch t := tok.(type) {
	case nil:
		n.kind, n.text = kNull, "null"
	case bool:
		n.kind, n.b, n.text = kBool, t, fmt.Sprint(t)
	case string:
		n.kind, n.text = kString, t
	case json.Number:
		setNumber(n, string(t))
	case json.Delim:
		switch t {
		case '[':
			n.kind = kList
			for r.dec.More() {
				item, err := r.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, item)
			}
		case '{':
			n.kind = kMap
			for r.dec.More() {
				kpos := r.start()
				ktok, err := r.dec.Token()
				if err != nil {
					return nil, r.fail(kpos, err)
				}
				ks, _ := ktok.(string)
				val, err := r.value(depth + 1)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, &node{kind: kString, pos: kpos, text: ks})
				n.vals = append(n.vals, val)
			}
		default:
			return nil, r.fail(pos, fmt.Errorf("unexpected %v", t))
		}
		end := r.start()
		if _, err := r.dec.Token(); err != nil { // the closing delimiter
			return nil, r.fail(end, err)
		}
	}
	return n, nil
}
