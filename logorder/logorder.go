// Package logorder is the order index of a job's output: which command
// wrote which bytes of its stdout and stderr, in the order they were read.
//
// The output itself stays in two streams per job ("out" and "err"), stored
// by byte offset; the index is a third stream of the job ("ord"), written
// and stored the same way, of one text line per record:
//
//	c 0 "make test"   command 0 starts; its text, quoted as Go does
//	o 0 120 57        57 bytes of stdout at offset 120, written by command 0
//	e - 0 12          12 bytes of stderr at offset 0, written by no command
//
// Commands are the wrapper's indexes ("0", "1", ...), "-" when none. A
// reader merges the two streams by following the index, so stdout and
// stderr come back in the order the agent read them (for two files tailed
// on notifications, the order their writes were noticed in).
package logorder

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Stream is the index's stream name beside "out" and "err".
const Stream = "ord"

// MaxLine bounds a record's line: a command's text is cut to fit.
const MaxLine = 4 << 10

// Record is one line of the index.
type Record struct {
	// Command is the wrapper's index of the command, "" when none.
	Command string
	// Start: the command starts, Text is its line. Otherwise Stream
	// ("out" or "err"), Offset and Length say which bytes it wrote.
	Start  bool
	Text   string
	Stream string
	Offset int64
	Length int64
}

// Append appends r's line, newline included, to b.
func (r Record) Append(b []byte) []byte {
	cmd := r.Command
	if cmd == "" {
		cmd = "-"
	}
	if r.Start {
		text := r.Text
		if len(text) > MaxLine-64 {
			text = strings.ToValidUTF8(text[:MaxLine-64], "") + "…"
		}
		b = append(b, "c "...)
		b = append(b, cmd...)
		b = append(b, ' ')
		b = strconv.AppendQuote(b, text)
		return append(b, '\n')
	}
	b = append(b, r.Stream[0], ' ')
	b = append(b, cmd...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.Offset, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.Length, 10)
	return append(b, '\n')
}

// ErrBadRecord is wrapped by Parse's errors.
var ErrBadRecord = errors.New("bad log order record")

// Parse reads one line (without its newline).
func Parse(line string) (Record, error) {
	kind, rest, ok := strings.Cut(line, " ")
	if !ok {
		return Record{}, fmt.Errorf("%w: %q", ErrBadRecord, line)
	}
	cmd, rest, ok := strings.Cut(rest, " ")
	if !ok || cmd != "-" && !ValidCommand(cmd) {
		return Record{}, fmt.Errorf("%w: %q", ErrBadRecord, line)
	}
	if cmd == "-" {
		cmd = ""
	}
	r := Record{Command: cmd}
	switch kind {
	case "c":
		text, err := strconv.Unquote(rest)
		if err != nil || cmd == "" {
			return Record{}, fmt.Errorf("%w: %q", ErrBadRecord, line)
		}
		r.Start, r.Text = true, text
		return r, nil
	case "o", "e":
		r.Stream = map[string]string{"o": "out", "e": "err"}[kind]
	default:
		return Record{}, fmt.Errorf("%w: %q", ErrBadRecord, line)
	}
	off, length, ok := strings.Cut(rest, " ")
	var err1, err2 error
	if ok {
		r.Offset, err1 = strconv.ParseInt(off, 10, 64)
		r.Length, err2 = strconv.ParseInt(length, 10, 64)
	}
	if !ok || err1 != nil || err2 != nil || r.Offset < 0 || r.Length <= 0 {
		return Record{}, fmt.Errorf("%w: %q", ErrBadRecord, line)
	}
	return r, nil
}

// ValidCommand says whether s is a wrapper index (digits, no leading
// zero): what a record may name. A job's wrapper events are the job's to
// write, so a writer checks what it is told.
func ValidCommand(s string) bool {
	n, err := strconv.ParseUint(s, 10, 31)
	return err == nil && strconv.FormatUint(n, 10) == s
}

// Number is how a person counts a command: from 1. The wrapper's index
// "0" is command 1; a command that is not an index is shown as it is.
func Number(command string) string {
	n, err := strconv.ParseUint(command, 10, 31)
	if err != nil || strconv.FormatUint(n, 10) != command {
		return command
	}
	return strconv.FormatUint(n+1, 10)
}

// Heading is how a command is shown above its output, "#N $ TEXT",
// numbered from 1, with the first line of its text (FirstLine).
func Heading(command, text string) string {
	return "#" + Number(command) + " $ " + FirstLine(text)
}

// FirstLine is a command's text shown on one line: its first, with "…"
// when more follow.
func FirstLine(text string) string {
	first, rest, more := strings.Cut(strings.TrimSpace(text), "\n")
	if more && strings.TrimSpace(rest) != "" {
		first += " …"
	}
	return first
}
