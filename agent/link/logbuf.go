package link

// logBuf holds a stream's unacknowledged bytes, from offset acked on, in
// segments of up to chunkSize bytes: adding copies the bytes once, and
// acknowledging drops whole segments, so neither moves what stays. A
// segment's bytes never change once written (only the last segment has
// room, past its length), so a chunk on the wire can be a slice of it.
type logBuf struct {
	acked int64
	segs  [][]byte
	size  int   // bytes held
	sent  int64 // offset sent up to on the current connection
}

// add appends a copy of data.
func (lb *logBuf) add(data []byte) {
	for len(data) > 0 {
		if len(lb.segs) == 0 || len(lb.segs[len(lb.segs)-1]) == cap(lb.segs[len(lb.segs)-1]) {
			lb.segs = append(lb.segs, make([]byte, 0, chunkSize))
		}
		last := &lb.segs[len(lb.segs)-1]
		n := copy((*last)[len(*last):cap(*last)], data)
		*last = (*last)[:len(*last)+n]
		lb.size += n
		data = data[n:]
	}
}

// end is the offset just past the last byte held.
func (lb *logBuf) end() int64 { return lb.acked + int64(lb.size) }

// ackTo drops what lies before offset off.
func (lb *logBuf) ackTo(off int64) {
	n := int(min(off-lb.acked, int64(lb.size)))
	if n <= 0 {
		return
	}
	lb.acked += int64(n)
	lb.size -= n
	for n > 0 {
		if s := lb.segs[0]; len(s) <= n {
			n -= len(s)
			lb.segs[0] = nil
			lb.segs = lb.segs[1:]
		} else {
			lb.segs[0] = s[n:]
			n = 0
		}
	}
	lb.sent = max(lb.sent, lb.acked)
}

// chunk returns up to max bytes from offset from (acked <= from < end),
// not copied: they end at most at the end of the segment they start in.
func (lb *logBuf) chunk(from int64, max int) []byte {
	skip := from - lb.acked
	for _, s := range lb.segs {
		if skip < int64(len(s)) {
			s = s[skip:]
			return s[:min(len(s), max):min(len(s), max)]
		}
		skip -= int64(len(s))
	}
	return nil
}
