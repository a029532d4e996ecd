package coordinator

import "fmt"

// Priority orders queued builds within the turns of their repositories
// and the limits (turns.go): a build of a higher priority goes before the
// others. The zero value is normal.
type Priority int

const (
	PriorityLow    Priority = -1
	PriorityNormal Priority = 0
	PriorityHigh   Priority = 1
)

func (p Priority) String() string {
	switch {
	case p > 0:
		return "high"
	case p < 0:
		return "low"
	}
	return "normal"
}

// ParsePriority reads a priority's name: high, normal or low ("" is
// normal).
func ParsePriority(s string) (Priority, error) {
	switch s {
	case "high":
		return PriorityHigh, nil
	case "normal", "":
		return PriorityNormal, nil
	case "low":
		return PriorityLow, nil
	}
	return 0, fmt.Errorf("--priority %q: say high, normal or low", s)
}
