package console

import (
	"fmt"
	"io"
)

// liveBlock is the status block at the bottom of a terminal: erased before
// new output is written and drawn again after it, the way docker compose
// shows its services.
type liveBlock struct {
	lines int // how many lines are on screen now
}

func (l *liveBlock) erase(w io.Writer) {
	if l.lines > 0 {
		fmt.Fprintf(w, "\x1b[%dA\x1b[J", l.lines) // up, then clear to the end
		l.lines = 0
	}
}

func (l *liveBlock) draw(w io.Writer, lines []string) {
	for _, s := range lines {
		fmt.Fprintf(w, "%s\x1b[K\n", s)
	}
	l.lines = len(lines)
}
