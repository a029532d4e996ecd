package secret

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// MinMaskLen is the length of the shortest secret a Masker masks.
const MinMaskLen = 4

// masked replaces secrets in output.
const masked = "***"

// Masker replaces every occurrence of any of its secrets with "***".
//
// Secrets shorter than MinMaskLen (4) bytes are not masked: a secret "1"
// would mask every 1 in every number and make logs unreadable without
// hiding anything.
//
// Where occurrences overlap (of one secret, or of two as with "pass" inside
// "password"), their union is masked as one "***", so a longer secret is never
// left partly visible because a shorter one matched in or before it.
// Occurrences that only touch are masked one by one ("******").
//
// The output never contains a secret, except that a secret containing "*"
// could be formed by a mask and the bytes next to it.
//
// A Masker is immutable and safe for concurrent use; a Stream is not.
type Masker struct {
	secrets [][]byte // distinct, at least MinMaskLen bytes
	maxLen  int

	// Secrets are found by looking at the 4 bytes (a gram) at every
	// stride-th position only: stride is the shortest secret's length less
	// 3, so every occurrence of a secret has one of its first stride grams
	// at such a position. A bit set of gram hashes rules out most positions
	// at the cost of one probe; grams then gives the candidates to compare.
	stride int
	filter [1 << filterBits / 64]uint64
	grams  map[uint32][]gram
}

// gram is a secret's gram at an offset in it. Each entry of Masker.grams
// lists its grams by decreasing offset, so the candidates a position gives
// come in order of start.
type gram struct{ secret, offset int }

const filterBits = 16

func filterHash(g uint32) uint32 { return g * 0x9e3779b1 >> (32 - filterBits) }

// NewMasker returns a masker of values.
func NewMasker(values []string) *Masker {
	m := &Masker{grams: map[uint32][]gram{}}
	minLen := 0
	for _, v := range slices.Compact(slices.Sorted(slices.Values(values))) {
		if len(v) < MinMaskLen {
			continue
		}
		m.secrets = append(m.secrets, []byte(v))
		m.maxLen = max(m.maxLen, len(v))
		if minLen == 0 || len(v) < minLen {
			minLen = len(v)
		}
	}
	m.stride = minLen - MinMaskLen + 1
	for off := m.stride - 1; off >= 0; off-- {
		for i, sec := range m.secrets {
			g := binary.LittleEndian.Uint32(sec[off:])
			m.grams[g] = append(m.grams[g], gram{i, off})
			h := filterHash(g)
			m.filter[h/64] |= 1 << (h % 64)
		}
	}
	return m
}

// Empty reports whether there is nothing to mask, so callers can skip the
// work.
func (m *Masker) Empty() bool { return len(m.secrets) == 0 }

// String masks a whole string, such as an event message.
func (m *Masker) String(s string) string {
	if m.Empty() {
		return s
	}
	out := m.Stream().mask([]byte(s), true)
	if string(out) == s {
		return s // nothing masked: keep the caller's string
	}
	return string(out)
}

// Stream masks one output stream given in pieces: a secret split across two
// writes is masked all the same. It is not safe for concurrent use.
//
// The concatenation of everything Write returns and a final Flush is
// Masker.String of the whole stream, however it was split.
type Stream struct {
	m *Masker
	// tail is the end of the input from the first partial match on: where
	// a secret still to come could start. tail[:out] is already passed on
	// (as itself or inside a mask), tail[out:] is held back.
	tail []byte
	out  int
	// runEnd is where the masked run that output last touched ends, in
	// tail; a secret starting before it extends the run, with no new "***".
	runEnd int

	buf  []byte // tail + the new write, when there is a tail
	cuts []cut
}

// cut is a part of the window taken out of the output, replaced by "***"
// when mask is set (else it extends a mask already passed on).
type cut struct {
	from, to int
	mask     bool
}

// Stream returns a new stream masker.
func (m *Masker) Stream() *Stream { return &Stream{m: m} }

// Write returns the masked bytes of p that are safe to pass on now. It holds
// back only the shortest tail that could still be the start of a secret
// (usually nothing, and never more than the longest secret's length less 1),
// so output is not delayed when there is no partial match.
//
// The result is p itself (or a prefix of it) when there are no secrets or
// when nothing is masked or was held back, else new memory. Write never
// keeps p.
func (s *Stream) Write(p []byte) []byte {
	if s.m.Empty() {
		return p
	}
	return s.mask(p, false)
}

// Flush returns what is held back, masked, at the end of the stream or when
// the writer goes quiet. The stream may go on after a Flush; a secret that
// then completes a prefix passed on by the Flush is masked from where that
// prefix ended, so only the prefix shows.
func (s *Stream) Flush() []byte {
	if s.m.Empty() {
		return nil
	}
	return s.mask(nil, true)
}

// mask passes on what it can of tail+p: everything when final.
//
// Every byte passed on verbatim is one no secret can still cover, and every
// "***" starts a run no earlier secret can still reach into: all secrets
// still to complete are partial matches at the end of the window, and
// nothing from the first of them on is passed on (unless final).
func (s *Stream) mask(p []byte, final bool) []byte {
	w := p
	if len(s.tail) > 0 {
		s.buf = append(append(s.buf[:0], s.tail...), p...)
		w = s.buf
	}
	partial := s.partialStart(w)
	hold := partial
	if final {
		hold = len(w)
	}

	// Sweep the occurrences starting before hold, in order of start.
	start, out, runEnd := s.out, s.out, s.runEnd
	s.cuts = s.cuts[:0]
	k := s.m.stride
	for q := 0; q+MinMaskLen <= len(w) && q < hold+k-1; q += k {
		g := binary.LittleEndian.Uint32(w[q:])
		if h := filterHash(g); s.m.filter[h/64]&(1<<(h%64)) == 0 {
			continue
		}
		for _, c := range s.m.grams[g] {
			from := q - c.offset
			sec := s.m.secrets[c.secret]
			if from < 0 || from >= hold || !bytes.HasPrefix(w[from:], sec) {
				continue
			}
			to := from + len(sec)
			switch {
			case to <= out:
				// Already passed on: found again in the tail.
			case from < runEnd && runEnd == out:
				// Overlaps the run the output ends with: extend it.
				if n := len(s.cuts) - 1; n >= 0 && s.cuts[n].to == out {
					s.cuts[n].to = to
				} else {
					s.cuts = append(s.cuts, cut{out, to, false})
				}
				runEnd, out = to, to
			default:
				// A new run. It can start before out only after a Flush
				// passed on its beginning.
				s.cuts = append(s.cuts, cut{max(from, out), to, true})
				runEnd, out = to, to
			}
		}
	}
	out = max(out, hold)

	// Keep the input from the first partial match on: no secret still to
	// complete starts before it. Usually that is nothing.
	s.tail = append(s.tail[:0], w[partial:]...)
	s.out = out - partial
	s.runEnd = max(runEnd-partial, 0)

	if len(s.cuts) == 0 && start == len(w)-len(p) {
		return p[:out-start] // nothing masked or held before: no copy
	}
	res := make([]byte, 0, out-start+len(s.cuts)*len(masked))
	at := start
	for _, c := range s.cuts {
		res = append(res, w[at:c.from]...)
		if c.mask {
			res = append(res, masked...)
		}
		at = c.to
	}
	return append(res, w[at:out]...)
}

// partialStart returns where the first partial match at the end of w
// starts: the first i such that w[i:] is a proper prefix of a secret, or
// len(w) if there is none.
func (s *Stream) partialStart(w []byte) int {
	for i := max(0, len(w)-(s.m.maxLen-1)); i < len(w); i++ {
		rest := w[i:]
		for _, sec := range s.m.secrets {
			if len(rest) < len(sec) && bytes.HasPrefix(sec, rest) {
				return i
			}
		}
	}
	return len(w)
}
