// Package rows is how the SQL stores (sqlstore on SQLite, pgstore on
// PostgreSQL) write the coordinator's values into columns and read them
// back, and how they say why a fenced change did not apply. Both keep the
// same encoding, so that `monkeyci migrate` copies rows as they are.
//
// Times are unix nanoseconds in integer columns (0 is the zero time); maps
// are JSON objects in text columns (NULL when empty).
package rows

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
)

// Nanos is t as kept: unix nanoseconds, 0 for the zero time.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Time is a kept time read back, in UTC.
func Time(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// MapJSON is m as kept: a JSON object, or nil (NULL) when m is empty.
func MapJSON(m map[string]string) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// JSONMap reads a map kept by MapJSON (nil: NULL); an empty one is nil.
func JSONMap(s *string) (map[string]string, error) {
	if s == nil || *s == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(*s), &m); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// Want is what a fenced change needs of a build.
type Want struct {
	State      coordinator.State
	Attempt    int
	AnyAttempt bool
	// Waiting, when set, is the Waiting the change sets: a build that has
	// it already needs no change.
	Waiting *string
}

func (w Want) String() string {
	if w.AnyAttempt {
		return string(w.State)
	}
	return fmt.Sprintf("%s at attempt %d", w.State, w.Attempt)
}

// Current is what a fenced change found when it changed nothing.
type Current struct {
	State   coordinator.State
	Attempt int
	Waiting string
}

// Refusal says why a fenced change that changed nothing did not apply:
// nil when it needed no change (the build is as asked already), else an
// error wrapping coordinator.ErrStale.
func (w Want) Refusal(c Current) error {
	matches := c.State == w.State && (w.AnyAttempt || c.Attempt == w.Attempt)
	if matches && w.Waiting != nil && c.Waiting == *w.Waiting {
		return nil
	}
	return fmt.Errorf("%w: the build is %s at attempt %d, the change needs it %s", coordinator.ErrStale, c.State, c.Attempt, w)
}

// ListJSON is a list as kept: a JSON array, or nil (NULL) when empty.
func ListJSON(l []string) (any, error) {
	if len(l) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// JSONList reads a list kept by ListJSON (nil: NULL).
func JSONList(s *string) ([]string, error) {
	if s == nil {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(*s), &l); err != nil {
		return nil, err
	}
	return l, nil
}

// NullBytes is NULL for no bytes, so that saving again keeps the old value.
func NullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// NullInt is NULL for nil.
func NullInt(n *int) any {
	if n == nil {
		return nil
	}
	return *n
}
