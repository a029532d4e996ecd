package pipeline

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds the values of one file after YAML aliases are expanded,
// so that a "billion laughs" file fails instead of eating the machine.
const maxNodes = 100_000

// parseYAML reads every document of a YAML file into positioned nodes.
func parseYAML(file string, data []byte) ([]*node, error) {
	if err := checkYAMLChars(file, data); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	c := &yamlConv{file: file}
	var docs []*node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, YAMLError(file, data, err)
		}
		if len(doc.Content) == 0 || isImplicitNull(doc.Content[0]) {
			continue // an empty document: comments only, or a bare "---"
		}
		n, err := c.conv(doc.Content[0], 0)
		if err != nil {
			return nil, err
		}
		docs = append(docs, n)
	}
	return docs, nil
}

// isImplicitNull is the null yaml.v3 makes for a document with nothing in
// it; it may stand on a line past the end of the file.
func isImplicitNull(y *yaml.Node) bool {
	return y.Kind == yaml.ScalarNode && y.Tag == "!!null" && y.Value == "" && y.Style == 0
}

type yamlConv struct {
	file  string
	count int
}

func (c *yamlConv) pos(y *yaml.Node) Position {
	return Position{File: c.file, Line: max(y.Line, 1), Column: max(y.Column, 1)}
}

func (c *yamlConv) conv(y *yaml.Node, depth int) (*node, error) {
	c.count++
	if c.count > maxNodes || depth > maxDepth {
		return nil, &Error{Pos: c.pos(y), Msg: "document too large or too deeply nested (after expanding aliases)"}
	}
	switch y.Kind {
	case yaml.AliasNode:
		if y.Alias == nil {
			return nil, &Error{Pos: c.pos(y), Msg: "alias to an unknown anchor"}
		}
		return c.conv(y.Alias, depth+1)
	case yaml.DocumentNode:
		if len(y.Content) == 0 {
			return &node{kind: kNull, pos: c.pos(y)}, nil
		}
		return c.conv(y.Content[0], depth+1)
	case yaml.SequenceNode:
		n := &node{kind: kList, pos: c.pos(y)}
		for _, item := range y.Content {
			v, err := c.conv(item, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, v)
		}
		return n, nil
	case yaml.MappingNode:
		return c.mapping(y, depth)
	case yaml.ScalarNode:
		return c.scalar(y), nil
	}
	return &node{kind: kOther, pos: c.pos(y), what: "an unsupported YAML value"}, nil
}

// mapping converts a YAML map, applying merge keys ("<<: *base"): keys
// written in the map win over merged ones, as YAML specifies.
func (c *yamlConv) mapping(y *yaml.Node, depth int) (*node, error) {
	n := &node{kind: kMap, pos: c.pos(y)}
	var merged []*node
	for i := 0; i+1 < len(y.Content); i += 2 {
		k, err := c.conv(y.Content[i], depth+1)
		if err != nil {
			return nil, err
		}
		v, err := c.conv(y.Content[i+1], depth+1)
		if err != nil {
			return nil, err
		}
		if y.Content[i].Kind == yaml.ScalarNode && y.Content[i].ShortTag() == "!!merge" {
			srcs := []*node{v}
			if v.kind == kList {
				srcs = v.items
			}
			for _, s := range srcs {
				if s.kind != kMap {
					return nil, &Error{Pos: s.pos, Msg: "merge key \"<<\" expects a map or a list of maps, got " + s.describe()}
				}
				merged = append(merged, s)
			}
			continue
		}
		n.keys = append(n.keys, k)
		n.vals = append(n.vals, v)
	}
	for _, m := range merged {
		for i, k := range m.keys {
			if !hasKey(n, k) {
				n.keys = append(n.keys, k)
				n.vals = append(n.vals, m.vals[i])
			}
		}
	}
	return n, nil
}

func hasKey(m, k *node) bool {
	for _, x := range m.keys {
		if x.kind == k.kind && x.text == k.text {
			return true
		}
	}
	return false
}

func (c *yamlConv) scalar(y *yaml.Node) *node {
	n := &node{kind: kString, pos: c.pos(y), text: y.Value}
	switch y.ShortTag() {
	case "!!str", "!!merge", "!!timestamp": // a date is text to us
	case "!!null":
		n.kind = kNull
	case "!!bool":
		var b bool
		if y.Decode(&b) == nil {
			n.kind, n.b = kBool, b
		}
	case "!!int":
		var i int64
		if y.Decode(&i) == nil {
			n.kind, n.i = kInt, i
		} else {
			n.kind, n.big = kInt, true
		}
	case "!!float":
		var f float64
		if y.Decode(&f) == nil {
			n.kind, n.f = kFloat, f
		}
	default:
		n.kind, n.what = kOther, "a value tagged "+strconv.Quote(y.Tag)
	}
	return n
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Scanner problems: for these yaml.v3 reports a 1-based line; for parser
// problems it reports the 0-based line of the problem or of its context.
var yamlScannerProblems = []string{
	"block sequence entries are not allowed", "could not find expected",
	"did not find expected alphabetic", "did not find expected comment",
	"did not find expected digit", "did not find expected hexdecimal",
	"did not find expected version", "did not find expected whitespace",
	"did not find the expected '>'", "exceeded max depth", "found a tab character",
	"found an indentation indicator", "found character that cannot start",
	"found extremely long", "found invalid Unicode", "found unexpected document indicator",
	"found unexpected end of stream", "found unexpected non-alphabetical",
	"found unknown directive", "found unknown escape", "mapping keys are not allowed",
	"mapping values are not allowed",
}

// YAMLError places a yaml.v3 syntax error. yaml.v3 reports lines only (and
// not always the problem's own); the column is the start of that line.
// Other YAML files of a build (script.yaml) report their errors with it.
func YAMLError(file string, data []byte, err error) error {
	msg := err.Error()
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		scanner := false
		for _, p := range yamlScannerProblems {
			if strings.HasPrefix(msg, p) {
				scanner = true
			}
		}
		if !scanner {
			line++
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	pos := lineStart(file, data, line)
	if m := yamlAnchorRE.FindStringSubmatch(msg); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			pos = newPosTracker(file, data).at(i)
		}
	}
	return &Error{Pos: pos, Msg: "invalid YAML: " + msg}
}

var yamlAnchorRE = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// checkYAMLChars reports, with its position, a character YAML does not
// allow, which yaml.v3 would report without one.
func checkYAMLChars(file string, data []byte) error {
	for i, r := range string(data) {
		ok := r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0x7e) || r == 0x85 ||
			(r >= 0xa0 && r <= 0xd7ff) || (r >= 0xe000 && r <= 0xfffd && (r != 0xfeff || i == 0)) ||
			(r >= 0x10000 && r <= 0x10ffff)
		if !ok {
			return &Error{Pos: newPosTracker(file, data).at(i),
				Msg: "invalid YAML: character " + strconv.QuoteRune(r) + " is not allowed, expected printable text"}
		}
	}
	return nil
}
