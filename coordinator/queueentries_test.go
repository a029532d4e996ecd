package coordinator

import (
	"slices"
	"testing"
	"time"
)

func TestQueueEntriesLookForTheGapsBelowTheHighestSeen(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var q queueEntries
	q.saw([]int64{3, 5, 9}, t0) // the first read: whatever is below was there before
	if top, missing := q.next(t0); top != 9 || len(missing) != 0 {
		t.Fatalf("after the first read: %d %v", top, missing)
	}
	q.saw([]int64{10, 13, 15}, t0)
	if top, missing := q.next(t0); top != 15 || !slices.Equal(missing, []int64{11, 12, 14}) {
		t.Fatalf("gaps: %d %v, want 15 [11 12 14]", top, missing)
	}
	q.saw([]int64{12, 16}, t0.Add(time.Second)) // 12 committed late
	if top, missing := q.next(t0.Add(time.Second)); top != 16 || !slices.Equal(missing, []int64{11, 14}) {
		t.Fatalf("after 12 showed: %d %v, want 16 [11 14]", top, missing)
	}
	if top, missing := q.next(t0.Add(missingFor + time.Millisecond)); top != 16 || len(missing) != 0 {
		t.Fatalf("given up after %s: %d %v", missingFor, top, missing)
	}
	// A gap wider than can be looked for is left to the whole queue's read.
	q.saw([]int64{16 + maxMissing + 10}, t0)
	if top, missing := q.next(t0); top != 16+maxMissing+10 || len(missing) != 0 {
		t.Fatalf("a wide gap: %d, %d missing", top, len(missing))
	}
	q.forget()
	if top, missing := q.next(t0); top != 0 || len(missing) != 0 {
		t.Fatalf("forgotten: %d %v", top, missing)
	}
}
