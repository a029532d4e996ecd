package agent

import (
	"context"
	"testing"

	"github.com/monkeyci/monkeyci/events"
)

// An action is the script at work: an await outstanding meanwhile (say, one
// the action itself makes) must not freeze it.
func TestPauserDoesNotPauseWhileAnActionRuns(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	ctx := context.Background()

	f.p.callBegin(ctx) // BeginAction
	f.p.actionBegin()
	f.p.callEnd()
	f.p.awaitBegin()
	waitNoPause(t)
	f.isPaused(t, false)

	// The action ends with the await still outstanding: now it pauses.
	f.p.callBegin(ctx) // EndAction
	f.p.actionEnd()
	f.p.callEnd()
	f.next(t, events.ScriptPaused)
	f.isPaused(t, true)
	f.p.awaitEnd(ctx)
	f.next(t, events.ScriptResumed)
	f.calls(t, "pause", "unpause")
}
