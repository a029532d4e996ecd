package events

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"olympos.io/encoding/edn"
)

// EDN form (MonkeyCI's): one map per event with keyword keys; :type and
// :status are keywords. Times are written as #inst "RFC 3339" (UTC, ns
// precision) and read as #inst, an RFC 3339 string or epoch milliseconds
// (MonkeyCI's own form). :duration is in nanoseconds, as in JSON.
// container/script-end carries its status and exit in a nested :result map,
// like the job wrapper writes it; other types carry them at the top level.

// MarshalEDN implements edn.Marshaler.
func (e Event) MarshalEDN() ([]byte, error) { return EncodeEDN(e), nil }

// UnmarshalEDN implements edn.Unmarshaler.
func (e *Event) UnmarshalEDN(b []byte) error {
	d, err := DecodeEDN(b)
	if err != nil {
		return err
	}
	*e = d
	return nil
}

// EncodeEDN returns e as one EDN map, without a trailing newline. Zero fields
// are left out.
func EncodeEDN(e Event) []byte {
	var b bytes.Buffer
	b.WriteString("{:type ")
	name(&b, string(e.Type))
	if !e.Time.IsZero() {
		b.WriteString(" :time ")
		if y := e.Time.Year(); y < 0 || y > 9999 {
			// RFC 3339 cannot say it; epoch millis can.
			b.WriteString(strconv.FormatInt(e.Time.UnixMilli(), 10))
		} else {
			b.WriteString(`#inst "`)
			b.WriteString(e.Time.UTC().Format(time.RFC3339Nano))
			b.WriteByte('"')
		}
	}
	str(&b, "build", e.Build)
	str(&b, "job", e.Job)
	str(&b, "command", e.Command)
	str(&b, "stdout", e.Stdout)
	str(&b, "stderr", e.Stderr)
	if e.Type == ContainerScriptEnd && (e.Status != "" || e.Exit != nil) {
		b.WriteString(" :result {")
		sep := ""
		if e.Status != "" {
			b.WriteString(":status ")
			name(&b, string(e.Status))
			sep = " "
		}
		if e.Exit != nil {
			fmt.Fprintf(&b, "%s:exit %d", sep, *e.Exit)
		}
		b.WriteByte('}')
	} else {
		if e.Exit != nil {
			fmt.Fprintf(&b, " :exit %d", *e.Exit)
		}
		if e.Status != "" {
			b.WriteString(" :status ")
			name(&b, string(e.Status))
		}
	}
	str(&b, "step", e.Step)
	if e.Done {
		b.WriteString(" :done? true")
	}
	if e.Action {
		b.WriteString(" :action? true")
	}
	if len(e.Deps) > 0 {
		b.WriteString(" :deps [")
		for i, d := range e.Deps {
			if i > 0 {
				b.WriteByte(' ')
			}
			quote(&b, d)
		}
		b.WriteByte(']')
	}
	if len(e.Expose) > 0 {
		b.WriteString(" :expose [")
		for i, p := range e.Expose {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%d", p)
		}
		b.WriteByte(']')
	}
	if len(e.Caches) > 0 {
		b.WriteString(" :caches [")
		for i, c := range e.Caches {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString("{:id ")
			quote(&b, c.ID)
			b.WriteString(" :scope ")
			quote(&b, c.Scope)
			str(&b, "from", c.From)
			str(&b, "key", c.Key)
			if c.Size != 0 {
				fmt.Fprintf(&b, " :size %d", c.Size)
			}
			if c.Fetched {
				b.WriteString(" :fetched true")
			}
			if c.Took != 0 {
				fmt.Fprintf(&b, " :took %d", int64(c.Took))
			}
			b.WriteByte('}')
		}
		b.WriteByte(']')
	}
	str(&b, "message", e.Message)
	if e.Duration != 0 {
		fmt.Fprintf(&b, " :duration %d", int64(e.Duration))
	}
	b.WriteByte('}')
	return b.Bytes()
}

func str(b *bytes.Buffer, key, v string) {
	if v == "" {
		return
	}
	b.WriteString(" :")
	b.WriteString(key)
	b.WriteByte(' ')
	quote(b, v)
}

// quote writes s as an EDN string. EDN has no \u escapes for control bytes
// in every reader, so only the usual ones are escaped; the rest go as is.
func quote(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// name writes s as a keyword when it can be one, else as a string (the
// decoder takes either), so odd values never produce unreadable EDN.
func name(b *bytes.Buffer, s string) {
	if isKeyword(s) {
		b.WriteByte(':')
		b.WriteString(s)
		return
	}
	quote(b, s)
}

// isKeyword is deliberately stricter than EDN: letters first, then letters,
// digits and a few marks, with at most one inner '/'.
func isKeyword(s string) bool {
	if s == "" || !letter(s[0]) {
		return false
	}
	slash := false
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case letter(c), c >= '0' && c <= '9', c == '-', c == '_', c == '?', c == '!', c == '.', c == '*', c == '+':
		case c == '/' && !slash && i+1 < len(s) && letter(s[i+1]):
			slash = true
		default:
			return false
		}
	}
	return true
}

func letter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// wire is what the decoder reads; loose types so that keywords, strings and
// numbers are all accepted where MonkeyCI writers differ.
type wire struct {
	Type     any   `edn:"type"`
	Time     any   `edn:"time"`
	Build    any   `edn:"build"`
	Job      any   `edn:"job"`
	JobID    any   `edn:"job-id"`
	Command  any   `edn:"command"`
	Stdout   any   `edn:"stdout"`
	Stderr   any   `edn:"stderr"`
	Exit     any   `edn:"exit"`
	Status   any   `edn:"status"`
	Result   *wire `edn:"result"`
	Step     any   `edn:"step"`
	Done     any   `edn:"done?"`
	Message  any   `edn:"message"`
	Duration any   `edn:"duration"`
	Deps     any   `edn:"deps"`
	Action   any   `edn:"action?"`
	Caches   any   `edn:"caches"`
	Expose   any   `edn:"expose"`
}

// DecodeEDN reads one EDN map as an Event. Unknown keys are ignored; input
// that is not exactly one map with a :type is an error. It never panics.
func DecodeEDN(b []byte) (e Event, err error) {
	defer func() {
		if r := recover(); r != nil { // the edn decoder re-panics some runtime errors
			e, err = Event{}, fmt.Errorf("edn: %v", r)
		}
	}()
	d := edn.NewDecoder(bytes.NewReader(b))
	var w wire
	if err := d.Decode(&w); err != nil {
		return Event{}, fmt.Errorf("edn: %w", err)
	}
	var rest any
	if err := d.Decode(&rest); err == nil {
		return Event{}, errors.New("edn: more than one value")
	} else if err != io.EOF { // the decoder says io.EOF only after a clean end
		return Event{}, fmt.Errorf("edn: after the event: %w", err)
	}
	return w.event()
}

func (w *wire) event() (Event, error) {
	var e Event
	var err error
	set := func(dst *string, key string, v any) {
		if err == nil {
			*dst, err = text(key, v)
		}
	}
	var typ, status string
	set(&typ, "type", w.Type)
	set(&e.Build, "build", w.Build)
	set(&e.Job, "job", w.Job)
	if e.Job == "" {
		set(&e.Job, "job-id", w.JobID)
	}
	set(&e.Command, "command", w.Command)
	set(&e.Stdout, "stdout", w.Stdout)
	set(&e.Stderr, "stderr", w.Stderr)
	set(&status, "status", w.Status)
	set(&e.Step, "step", w.Step)
	set(&e.Message, "message", w.Message)
	if err != nil {
		return Event{}, err
	}
	if typ == "" {
		return Event{}, errors.New("edn: event without :type")
	}
	e.Type, e.Status = Type(typ), Result(status)
	if e.Deps, err = texts("deps", w.Deps); err != nil {
		return Event{}, err
	}
	if e.Caches, err = caches(w.Caches); err != nil {
		return Event{}, err
	}
	if e.Expose, err = ports(w.Expose); err != nil {
		return Event{}, err
	}
	if e.Exit, err = exit(w.Exit); err != nil {
		return Event{}, err
	}
	if r := w.Result; r != nil { // the wrapper's {:status .. :exit ..}
		if err := r.into(&e); err != nil {
			return Event{}, err
		}
	}
	if e.Done, err = flag("done?", w.Done); err != nil {
		return Event{}, err
	}
	if e.Action, err = flag("action?", w.Action); err != nil {
		return Event{}, err
	}
	switch v := w.Time.(type) {
	case nil:
	case time.Time:
		e.Time = v
	case int64:
		e.Time = time.UnixMilli(v).UTC()
	case string:
		if e.Time, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return Event{}, fmt.Errorf("edn: :time: %w", err)
		}
	default:
		return Event{}, fmt.Errorf("edn: :time is %T, want #inst or epoch millis", v)
	}
	switch v := w.Duration.(type) {
	case nil:
	case int64:
		e.Duration = time.Duration(v)
	default:
		return Event{}, fmt.Errorf("edn: :duration is %T, want nanoseconds", v)
	}
	return e, nil
}

// into sets e's status and exit from a nested :result map.
func (r *wire) into(e *Event) error {
	s, err := text("status", r.Status)
	if err != nil {
		return err
	}
	x, err := exit(r.Exit)
	if err != nil {
		return err
	}
	if s != "" {
		e.Status = Result(s)
	}
	if x != nil {
		e.Exit = x
	}
	return nil
}

// text accepts a string, a keyword, a symbol or an integer (indexes).
func text(key string, v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case edn.Keyword:
		return string(v), nil
	case edn.Symbol:
		return string(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	}
	return "", fmt.Errorf("edn: :%s is %T, want a string or keyword", key, v)
}

// texts reads a vector (or list) of strings, as :deps.
func texts(key string, v any) ([]string, error) {
	var items []any
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []any:
		items = v
	default:
		return nil, fmt.Errorf("edn: :%s is %T, want a vector of strings", key, v)
	}
	out := make([]string, 0, len(items))
	for _, it := range items {
		t, err := text(key, it)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// ports reads :expose, a vector of port numbers.
func ports(v any) ([]int, error) {
	items, ok := v.([]any)
	if v == nil {
		return nil, nil
	}
	if !ok {
		return nil, fmt.Errorf("edn: :expose is %T, want a vector of ports", v)
	}
	out := make([]int, 0, len(items))
	for _, it := range items {
		p, ok := it.(int64)
		if !ok || p < 1 || p > 65535 {
			return nil, fmt.Errorf("edn: :expose holds %v, want ports from 1 to 65535", it)
		}
		out = append(out, int(p))
	}
	return out, nil
}

// caches reads :caches, a vector of {:id :scope :from} maps.
func caches(v any) ([]Cache, error) {
	if v == nil {
		return nil, nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("edn: :caches is %T, want a vector of maps", v)
	}
	var out []Cache // nil when empty, as an event without caches encodes
	for _, it := range items {
		m, ok := it.(map[any]any)
		if !ok {
			return nil, fmt.Errorf("edn: :caches holds %T, want a map", it)
		}
		var c Cache
		for _, f := range []struct {
			key string
			dst *string
		}{{"id", &c.ID}, {"scope", &c.Scope}, {"from", &c.From}, {"key", &c.Key}} {
			t, err := text("caches "+f.key, m[edn.Keyword(f.key)])
			if err != nil {
				return nil, err
			}
			*f.dst = t
		}
		for _, f := range []struct {
			key string
			dst *int64
		}{{"size", &c.Size}, {"took", (*int64)(&c.Took)}} {
			switch n := m[edn.Keyword(f.key)].(type) {
			case nil:
			case int64:
				*f.dst = n
			default:
				return nil, fmt.Errorf("edn: caches %s is %T, want an integer", f.key, n)
			}
		}
		switch b := m[edn.Keyword("fetched")].(type) {
		case nil:
		case bool:
			c.Fetched = b
		default:
			return nil, fmt.Errorf("edn: caches fetched is %T, want true or false", b)
		}
		out = append(out, c)
	}
	return out, nil
}

func exit(v any) (*int, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case int64:
		if int64(int(v)) != v {
			return nil, fmt.Errorf("edn: :exit %d out of range", v)
		}
		return ExitCode(int(v)), nil
	}
	return nil, fmt.Errorf("edn: :exit is %T, want an integer", v)
}

// flag reads an optional boolean value.
func flag(key string, v any) (bool, error) {
	switch v := v.(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	}
	return false, fmt.Errorf("edn: :%s is %T, want a boolean", key, v)
}
