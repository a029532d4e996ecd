package pipeline

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxErrors bounds the problems reported at once: past that, the rest are
// usually echoes of the first ones.
const maxErrors = 20

// String renders p as "file:line:col", leaving out what is unknown.
func (p Position) String() string {
	s := p.File
	if p.Line > 0 {
		if s != "" {
			s += ":"
		}
		s += strconv.Itoa(p.Line)
		if p.Column > 0 {
			s += ":" + strconv.Itoa(p.Column)
		}
	}
	return s
}

// Error is one problem in a build file, at the key or value that is wrong.
type Error struct {
	Pos Position
	Msg string
}

func (e *Error) Error() string {
	if p := e.Pos.String(); p != "" {
		return p + ": " + e.Msg
	}
	return e.Msg
}

// Errors is several problems, sorted by position, one per line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// errList collects problems while decoding so that all of them are reported.
type errList struct {
	errs []*Error
}

func (l *errList) add(pos Position, format string, args ...any) {
	l.errs = append(l.errs, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// addErr adds err, flattening Errors.
func (l *errList) addErr(err error) {
	switch e := err.(type) {
	case nil:
	case *Error:
		l.errs = append(l.errs, e)
	case Errors:
		l.errs = append(l.errs, e...)
	default:
		l.errs = append(l.errs, &Error{Msg: err.Error()})
	}
}

func (l *errList) len() int { return len(l.errs) }

// err returns nil, one *Error, or Errors sorted by file (in the order the
// files were first seen in files, then in the list) and position.
func (l *errList) err(files ...string) error {
	if len(l.errs) == 0 {
		return nil
	}
	rank := map[string]int{}
	for _, f := range files {
		if _, ok := rank[f]; !ok {
			rank[f] = len(rank)
		}
	}
	for _, e := range l.errs {
		if _, ok := rank[e.Pos.File]; !ok {
			rank[e.Pos.File] = len(rank)
		}
	}
	es := slices.Clone(l.errs)
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(rank[a.Pos.File], rank[b.Pos.File]),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column))
	})
	es = slices.CompactFunc(es, func(a, b *Error) bool { return *a == *b })
	if len(es) == 1 {
		return es[0]
	}
	if len(es) > maxErrors {
		rest := len(es) - maxErrors
		es = append(es[:maxErrors:maxErrors], &Error{Pos: es[maxErrors].Pos,
			Msg: fmt.Sprintf("too many errors (%d more not shown)", rest)})
	}
	return Errors(es)
}
