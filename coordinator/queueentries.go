package coordinator

import (
	"context"
	"slices"
	"sync"
	"time"
)

// queueFeed is a store that numbers the entries to its queue (pgstore): a
// leader reads the entries after the last it saw, and the few below it it
// has not seen yet, rather than the whole queue.
type queueFeed interface {
	// QueuedSince returns the builds queued now whose entry is numbered
	// after mark or among missing, in the order of entries, each with its
	// entry's number.
	QueuedSince(ctx context.Context, mark int64, missing []int64) ([]Build, []int64, error)
}

// missingFor is how long a number below the highest seen is looked for.
// An entry is numbered as its insert or change runs and shows when it
// commits, so one can show after a later one: by far most show within
// milliseconds. A number that never shows (its build left the queue
// before it was read, its insert failed) is given up then; the whole
// queue, read every adoptAllEvery-th time, finds anything given up too
// soon.
const missingFor = 2 * time.Second

// maxMissing bounds the numbers looked for: past it, a gap is left to the
// read of the whole queue (the first read of a leader, a burst of builds
// placed at once that never entered the queue).
const maxMissing = 4096

// queueEntries is what a leader has read of the numbered entries to the
// queue: the highest number, and those below it not seen yet, since when.
type queueEntries struct {
	mu      sync.Mutex
	top     int64
	missing map[int64]time.Time
}

// forget starts over, as a new time leading does.
func (q *queueEntries) forget() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.top, q.missing = 0, nil
}

// next says what to read: the entries after the highest seen, and the
// numbers below it still looked for.
func (q *queueEntries) next(now time.Time) (int64, []int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var missing []int64
	for n, since := range q.missing {
		if now.Sub(since) > missingFor {
			delete(q.missing, n)
			continue
		}
		missing = append(missing, n)
	}
	slices.Sort(missing)
	return q.top, missing
}

// saw notes the numbers a read returned: those below the highest seen are
// found, and the gaps above it are looked for from now on.
func (q *queueEntries) saw(numbers []int64, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.missing == nil {
		q.missing = map[int64]time.Time{}
	}
	newTop := q.top
	seen := make(map[int64]bool, len(numbers))
	for _, n := range numbers {
		seen[n] = true
		delete(q.missing, n)
		newTop = max(newTop, n)
	}
	if q.top > 0 && newTop-q.top <= maxMissing-int64(len(q.missing)) {
		for n := q.top + 1; n < newTop; n++ {
			if !seen[n] {
				q.missing[n] = now
			}
		}
	}
	q.top = newTop
}
