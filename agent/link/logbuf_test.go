package link

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// Whatever the sizes added and the acknowledgements, the chunks read in
// order from the sent offset are the bytes added, and acknowledged bytes
// are let go.
func TestLogBufGivesBackTheBytesAddedInOrder(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42} {
		rng := rand.New(rand.NewPCG(seed, seed))
		var lb logBuf
		var want, got []byte
		for round := 0; round < 300; round++ {
			data := make([]byte, rng.IntN(3*chunkSize))
			for i := range data { // a pattern of period 251: a shift shows
				data[i] = byte((len(want) + i) % 251)
			}
			lb.add(data)
			want = append(want, data...)
			// Send some, as the outbox does, then acknowledge part of it.
			for sends := rng.IntN(4); sends > 0 && lb.sent < lb.end(); sends-- {
				c := lb.chunk(lb.sent, chunkSize)
				if len(c) == 0 || len(c) > chunkSize {
					t.Fatalf("seed %d: chunk of %d bytes at %d (held up to %d)", seed, len(c), lb.sent, lb.end())
				}
				got = append(got, c...)
				lb.sent += int64(len(c))
			}
			lb.ackTo(lb.acked + rng.Int64N(lb.sent-lb.acked+1))
			if lb.end() != int64(len(want)) || lb.size < 0 {
				t.Fatalf("seed %d: holds up to %d with %d bytes, want up to %d", seed, lb.end(), lb.size, len(want))
			}
		}
		for lb.sent < lb.end() {
			c := lb.chunk(lb.sent, chunkSize)
			got = append(got, c...)
			lb.sent += int64(len(c))
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d: the chunks differ from the bytes added (%d vs %d bytes)", seed, len(got), len(want))
		}
		lb.ackTo(lb.end())
		if lb.size != 0 || len(lb.segs) != 0 {
			t.Errorf("seed %d: after acknowledging everything %d bytes in %d segments are held", seed, lb.size, len(lb.segs))
		}
	}
}
