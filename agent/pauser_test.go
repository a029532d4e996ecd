package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/monkeyci/monkeyci/events"
)

// fakeEngine is a Runtime that only knows Pause and Unpause: it records
// them, keeps the container's state, and can hold Pause until told, as a
// slow engine would. Any other call panics (the embedded nil interface).
type fakeEngine struct {
	Runtime

	// gate, when set, holds every Pause until it is closed (or receives).
	gate chan struct{}
	// entered receives a value as each Pause begins, when set.
	entered chan struct{}
	// pauseErr, when set, is what Pause returns (the container stays as it was).
	pauseErr error
	// unpauseErrs is how many Unpause calls fail before one succeeds.
	unpauseErrs int

	mu       sync.Mutex
	paused   bool
	calls    []string
	inFlight int
	overlap  bool // two engine calls at once: the pauser must serialise them
}

func (f *fakeEngine) begin(call, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != "script-id" {
		panic("engine call for container " + id)
	}
	f.calls = append(f.calls, call)
	f.inFlight++
	f.overlap = f.overlap || f.inFlight > 1
}

func (f *fakeEngine) Pause(ctx context.Context, id string) error {
	f.begin("pause", id)
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	if f.pauseErr != nil {
		return f.pauseErr
	}
	f.paused = true
	return nil
}

func (f *fakeEngine) Unpause(ctx context.Context, id string) error {
	f.begin("unpause", id)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	if f.unpauseErrs > 0 {
		f.unpauseErrs--
		return errors.New("engine busy")
	}
	f.paused = false
	return nil
}

// state returns whether the container is frozen and the calls so far.
func (f *fakeEngine) state() (bool, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.paused, append([]string(nil), f.calls...)
}

// scriptHolds is what a script container holds of the ledger while it runs.
var scriptHolds = Resources{MilliCPUs: 1000, Memory: 1 * gb}

type pauserFixture struct {
	p      *pauser
	engine *fakeEngine
	ledger *Ledger
	events chan events.Event
}

func newPauser(t *testing.T, enabled bool, engine *fakeEngine) *pauserFixture {
	t.Helper()
	f := &pauserFixture{engine: engine, ledger: NewLedger(Resources{4000, 8 * gb}), events: make(chan events.Event, 1000)}
	f.p = &pauser{
		rt: engine, id: "script-id", enabled: enabled, ledger: f.ledger, script: scriptHolds,
		emit: func(e events.Event) { f.events <- e },
		fail: func(err error) { t.Errorf("the build was failed: %v", err) },
		log:  hclog.NewNullLogger(),
	}
	if err := f.p.hold(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// No pause may be left running into the next test.
		if engine.gate != nil {
			select {
			case <-engine.gate:
			default:
				close(engine.gate)
			}
		}
		waitNoPause(t)
	})
	return f
}

// next returns the next event, which must be of type want.
func (f *pauserFixture) next(t *testing.T, want events.Type) events.Event {
	t.Helper()
	select {
	case e := <-f.events:
		if e.Type != want {
			t.Fatalf("event %s, want %s", e.Type, want)
		}
		if e.Time.IsZero() {
			t.Errorf("%s has no time", e.Type)
		}
		return e
	case <-time.After(patience):
		t.Fatalf("no %s event", want)
	}
	panic("unreachable")
}

// noEvent checks that no event was emitted so far.
func (f *pauserFixture) noEvent(t *testing.T) {
	t.Helper()
	select {
	case e := <-f.events:
		t.Fatalf("unexpected event %s", e.Type)
	default:
	}
}

// isPaused checks the pauser's and the engine's view.
func (f *pauserFixture) isPaused(t *testing.T, want bool) {
	t.Helper()
	if got := f.p.isPaused(); got != want {
		t.Errorf("pauser says paused=%v, want %v", got, want)
	}
	if got, calls := f.engine.state(); got != want {
		t.Errorf("engine says paused=%v, want %v (calls %v)", got, want, calls)
	}
	cpu := scriptHolds.MilliCPUs
	if want {
		cpu = 0
	}
	if got := f.ledger.Used(); got.MilliCPUs != cpu || got.Memory != scriptHolds.Memory {
		t.Errorf("ledger holds %+v for the script, want %d mCPU and its memory", got, cpu)
	}
}

func (f *pauserFixture) calls(t *testing.T, want ...string) {
	t.Helper()
	_, got := f.engine.state()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("engine calls %v, want %v", got, want)
	}
}

// waitNoPause waits until no pause goroutine is left: the way to know that
// one that decided not to pause has finished deciding.
func waitNoPause(t *testing.T) {
	t.Helper()
	waitFor(t, "no pause goroutine is left", func() bool {
		for _, g := range goroutines() {
			// Started by go p.pause(): a goroutine that has not run yet
			// shows only its wrapper, so look at who created it.
			if strings.Contains(g, "agent.(*pauser).pause(") || strings.Contains(g, "created by github.com/monkeyci/monkeyci/agent.(*pauser).") {
				return false
			}
		}
		return true
	})
}

func TestPauserPausesWhileAwaitingAndResumesBeforeAnswering(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	ctx := context.Background()

	f.p.awaitBegin()
	paused := f.next(t, events.ScriptPaused)
	if paused.Duration < 0 {
		t.Errorf("paused event's duration %v", paused.Duration)
	}
	f.isPaused(t, true)

	f.p.awaitEnd(ctx)
	// Unpaused by the time awaitEnd returns: no waiting here.
	f.isPaused(t, false)
	resumed := f.next(t, events.ScriptResumed)
	if resumed.Duration <= 0 || resumed.Duration > patience {
		t.Errorf("resumed event's duration %v", resumed.Duration)
	}
	if !resumed.Time.After(paused.Time) {
		t.Errorf("resumed at %v, paused at %v", resumed.Time, paused.Time)
	}
	n, total := f.p.stats()
	if n != 1 || total != resumed.Duration {
		t.Errorf("stats %d pauses for %v, want 1 for %v", n, total, resumed.Duration)
	}
	f.calls(t, "pause", "unpause")

	// And again: the counts are back where they were.
	f.p.awaitBegin()
	f.next(t, events.ScriptPaused)
	f.p.awaitEnd(ctx)
	f.next(t, events.ScriptResumed)
	f.isPaused(t, false)
	if n, _ := f.p.stats(); n != 2 {
		t.Errorf("%d pauses, want 2", n)
	}
	f.calls(t, "pause", "unpause", "pause", "unpause")
}

func TestPauserResumesWhenAnotherCallArrives(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	ctx := context.Background()
	f.p.awaitBegin()
	f.next(t, events.ScriptPaused)

	f.p.callBegin(ctx) // say, a StartJob whose bytes were on the wire
	f.isPaused(t, false)
	f.next(t, events.ScriptResumed)

	// While the call is outstanding a second await does not pause.
	f.p.awaitBegin()
	waitNoPause(t)
	f.isPaused(t, false)

	f.p.callEnd()
	// With only awaits left outstanding, the script is paused again.
	f.next(t, events.ScriptPaused)
	f.isPaused(t, true)

	f.p.awaitEnd(ctx)
	f.next(t, events.ScriptResumed)
	f.p.awaitEnd(ctx)
	f.isPaused(t, false)
	f.noEvent(t)
	f.calls(t, "pause", "unpause", "pause", "unpause")
}

func TestPauserTrackUnpausesBeforeTheCallIsServed(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	ctx := context.Background()
	f.p.awaitBegin()
	f.next(t, events.ScriptPaused)

	served := false
	_, err := f.p.track(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/monkeyci.jobapi.v1.JobAPI/StartJob"},
		func(ctx context.Context, req any) (any, error) {
			served = true
			if f.p.isPaused() {
				t.Error("the call is served while the script is paused")
			}
			f.p.mu.Lock()
			defer f.p.mu.Unlock()
			if f.p.others != 1 {
				t.Errorf("%d other calls counted while serving one", f.p.others)
			}
			return nil, nil
		})
	if err != nil || !served {
		t.Fatalf("served %v, error %v", served, err)
	}
	f.next(t, events.ScriptResumed)
	f.p.mu.Lock()
	others, awaits := f.p.others, f.p.awaits
	f.p.mu.Unlock()
	if others != 0 || awaits != 1 {
		t.Errorf("after the call: %d others, %d awaits; want 0 and 1", others, awaits)
	}
	f.next(t, events.ScriptPaused) // the await is alone again

	// AwaitJobs counts itself: track lets it through untouched.
	_, _ = f.p.track(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/monkeyci.jobapi.v1.JobAPI/AwaitJobs"},
		func(ctx context.Context, req any) (any, error) {
			f.p.mu.Lock()
			defer f.p.mu.Unlock()
			if f.p.others != 0 {
				t.Errorf("an await counted as another call")
			}
			return nil, nil
		})
	f.p.awaitEnd(ctx)
	f.next(t, events.ScriptResumed)
	f.calls(t, "pause", "unpause", "pause", "unpause")
}

func TestPauserDisabledNeverPauses(t *testing.T) {
	f := newPauser(t, false, &fakeEngine{})
	ctx := context.Background()
	f.p.awaitBegin()
	f.p.awaitBegin()
	f.p.jobStarting()
	f.p.jobStarted()
	waitNoPause(t)
	f.isPaused(t, false)
	f.p.awaitEnd(ctx)
	f.p.callBegin(ctx)
	f.p.callEnd()
	f.p.awaitEnd(ctx)
	f.isPaused(t, false)
	f.noEvent(t)
	f.calls(t)
	if n, total := f.p.stats(); n != 0 || total != 0 {
		t.Errorf("stats %d, %v", n, total)
	}
}

func TestPauserWaitsForStartingJobs(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	ctx := context.Background()
	f.p.jobStarting()
	f.p.jobStarting()
	f.p.awaitBegin() // two jobs are being started: no pause yet
	waitNoPause(t)
	f.isPaused(t, false)

	f.p.jobStarted() // one is still starting
	waitNoPause(t)
	f.isPaused(t, false)
	f.noEvent(t)

	f.p.jobStarted() // the last start triggers the pause
	f.next(t, events.ScriptPaused)
	f.isPaused(t, true)

	// A job that starts while the script is frozen leaves it frozen.
	f.p.jobStarting()
	f.p.jobStarted()
	waitNoPause(t)
	f.isPaused(t, true)

	f.p.awaitEnd(ctx)
	f.next(t, events.ScriptResumed)
	f.isPaused(t, false)
	f.calls(t, "pause", "unpause")
}

// The pause a job's start makes due is made before the start goes on, but
// an engine that does not answer holds the job back at most jobFreezeWait.
func TestPauserAJobStartWaitsForTheFreezeButNotForAHungEngine(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	f.p.jobStarting()
	f.p.awaitBegin()
	f.p.jobStarted()
	if paused, _ := f.engine.state(); !paused {
		t.Error("the job's start went on before the script was frozen")
	}
	f.next(t, events.ScriptPaused)
	f.p.awaitEnd(context.Background())
	f.next(t, events.ScriptResumed)

	engine := &fakeEngine{gate: make(chan struct{})}
	g := newPauser(t, true, engine)
	g.p.jobStarting()
	g.p.awaitBegin()
	returned := make(chan struct{})
	go func() {
		g.p.jobStarted()
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(patience):
		t.Fatal("the job's start waited on an engine that does not answer")
	}
	if paused, _ := engine.state(); paused {
		t.Error("the engine froze the script while its pause call was held")
	}
	close(engine.gate)
	g.next(t, events.ScriptPaused)
	g.isPaused(t, true)
}

// Two awaits outstanding (jobs and an unblock, side by side): once one is
// answered the script works on the answer, calling the other off, and a
// job's start meanwhile must not freeze it. Its next call makes it a
// waiting script again.
func TestPauserLeavesAnAnsweredScriptRunningBesideAnotherAwait(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	ctx := context.Background()
	f.p.awaitBegin()
	f.next(t, events.ScriptPaused)
	f.p.awaitBegin()
	f.p.awaitEnd(ctx) // the first answer
	f.next(t, events.ScriptResumed)

	f.p.jobStarting() // a job started before the awaits gets its container
	f.p.jobStarted()
	waitNoPause(t)
	f.isPaused(t, false)
	f.noEvent(t)

	// The script calls the other await off and awaits again; the agent
	// hears of the call-off only after the new await froze the script.
	f.p.awaitBegin()
	f.next(t, events.ScriptPaused)
	f.p.awaitOver(calledOff())
	waitNoPause(t)
	f.isPaused(t, true)
	f.noEvent(t)
	f.p.awaitEnd(ctx)
	f.next(t, events.ScriptResumed)
	f.calls(t, "pause", "unpause", "pause", "unpause")
}

// The driver calls off an await, but the agent hears of it late: the
// script has meanwhile made a call (StartJob) and may have been frozen
// again by the stale count. The late call-off must leave it running.
func TestPauserLateCallOffAfterACallLeavesTheScriptRunning(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	ctx := context.Background()
	f.p.awaitBegin() // the jobs
	f.next(t, events.ScriptPaused)
	f.p.awaitBegin()  // the unblock
	f.p.awaitEnd(ctx) // the unblock is answered first
	f.next(t, events.ScriptResumed)
	f.p.callBegin(ctx) // the driver starts the unblocked job
	f.p.callEnd()      // before the agent hears the jobs await called off
	waitNoPause(t)
	f.isPaused(t, false)
	f.p.awaitOver(calledOff())
	waitNoPause(t)
	f.isPaused(t, false)
}

// One await froze the script while another was answered at once (its
// job had ended already): the answer must thaw it, and so must the
// late end of the await it then calls off.
func TestPauserAnAwaitAnsweredAtOnceThawsTheScript(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	ctx := context.Background()
	f.p.awaitBegin() // the unblock, waiting
	f.next(t, events.ScriptPaused)
	f.p.answer(ctx) // the jobs, answered at once
	f.next(t, events.ScriptResumed)
	f.isPaused(t, false)
	f.p.awaitOver(calledOff()) // the unblock, called off
	waitNoPause(t)
	f.isPaused(t, false)
	f.calls(t, "pause", "unpause")
}

// calledOff is the context of an await its caller called off.
func calledOff() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// An await that ends by its deadline is answered (with an error): the
// script must run to read it.
func TestPauserResumesForAnAwaitPastItsDeadline(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	f.p.awaitBegin()
	f.next(t, events.ScriptPaused)
	late, cancel := context.WithDeadline(context.Background(), time.Now())
	defer cancel()
	<-late.Done()
	f.p.awaitOver(late)
	f.next(t, events.ScriptResumed)
	f.isPaused(t, false)
}

func TestPauserJobStartedWithoutAwaitDoesNotPause(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	f.p.jobStarting()
	f.p.jobStarted()
	waitNoPause(t)
	f.isPaused(t, false)
	f.calls(t)
}

// TestPauserAwaitEndsWhilePauseIsInFlight: the engine is slow to freeze;
// the await is answered meanwhile. awaitEnd must wait for the pause and undo
// it, so the script is running when it reads its answer.
func TestPauserAwaitEndsWhilePauseIsInFlight(t *testing.T) {
	engine := &fakeEngine{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	f := newPauser(t, true, engine)
	ctx := context.Background()

	f.p.awaitBegin()
	select {
	case <-engine.entered:
	case <-time.After(patience):
		t.Fatal("Pause was not called")
	}
	ended := make(chan struct{})
	go func() {
		f.p.awaitEnd(ctx)
		close(ended)
	}()
	// awaitEnd has counted the await out before it waits for the engine.
	waitFor(t, "the await is counted out", func() bool {
		f.p.mu.Lock()
		defer f.p.mu.Unlock()
		return f.p.awaits == 0
	})
	select {
	case <-ended:
		t.Fatal("awaitEnd returned while Pause was still in flight")
	default:
	}

	close(engine.gate)
	select {
	case <-ended:
	case <-time.After(patience):
		t.Fatal("awaitEnd did not return")
	}
	f.isPaused(t, false)
	f.calls(t, "pause", "unpause")
	f.next(t, events.ScriptPaused)
	f.next(t, events.ScriptResumed)
	waitNoPause(t)
	f.isPaused(t, false)
	if engine.overlap {
		t.Error("Pause and Unpause overlapped on the engine")
	}
}

// TestPauserLateStartingPauseDoesNotPause: the pause goroutine only gets
// the engine after the await it was for has ended. It must not freeze the
// script at all.
func TestPauserLateStartingPauseDoesNotPause(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	ctx := context.Background()

	f.p.engine.Lock() // as an engine call in flight would
	f.p.awaitBegin()
	waitGoroutine(t, "the pause waits for the engine", func(g string) bool {
		return strings.Contains(g, "agent.(*pauser).pause(")
	})
	ended := make(chan struct{})
	go func() {
		f.p.awaitEnd(ctx)
		close(ended)
	}()
	waitFor(t, "the await is counted out", func() bool {
		f.p.mu.Lock()
		defer f.p.mu.Unlock()
		return f.p.awaits == 0
	})
	f.p.engine.Unlock()

	<-ended
	waitNoPause(t)
	f.isPaused(t, false)
	f.calls(t)
	f.noEvent(t)
}

// TestPauserLatePauseAfterAnotherCallDoesNotPause: same, but what ends the
// reason to pause is another call arriving.
func TestPauserLatePauseAfterAnotherCallDoesNotPause(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	ctx := context.Background()

	f.p.engine.Lock()
	f.p.awaitBegin()
	waitGoroutine(t, "the pause waits for the engine", func(g string) bool {
		return strings.Contains(g, "agent.(*pauser).pause(")
	})
	began := make(chan struct{})
	go func() {
		f.p.callBegin(ctx)
		close(began)
	}()
	waitFor(t, "the call is counted", func() bool {
		f.p.mu.Lock()
		defer f.p.mu.Unlock()
		return f.p.others == 1
	})
	f.p.engine.Unlock()
	<-began
	waitNoPause(t)
	f.isPaused(t, false)
	f.calls(t)

	f.p.callEnd() // the await is alone again: a new pause may begin
	f.p.awaitEnd(ctx)
	waitNoPause(t)
	f.isPaused(t, false)
}

// A script whose pause failed still only waits: its CPU is lent to jobs all
// the same (a job needing it must not hang on an engine fault), and taken
// back when the await is answered.
func TestPauserFailedPauseStillLendsTheCPU(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{pauseErr: errors.New("engine says no")})
	f.p.awaitBegin()
	waitNoPause(t)
	if f.p.isPaused() {
		t.Error("pauser says paused after a failed pause")
	}
	if got := f.ledger.Used().MilliCPUs; got != 0 {
		t.Errorf("the script holds %d mCPU while waiting, want its CPU lent", got)
	}
	f.p.awaitEnd(context.Background())
	f.isPaused(t, false)
	f.calls(t, "pause") // nothing to undo
	f.noEvent(t)
	if n, _ := f.p.stats(); n != 0 {
		t.Errorf("%d pauses counted", n)
	}
}

// TestPauserStress interleaves awaits, other calls and job starts from many
// goroutines against a slow engine. Whatever the order, engine calls never
// overlap, pause and unpause alternate, and once every call is answered the
// script runs and holds its CPU again.
func TestPauserStress(t *testing.T) {
	engine := &fakeEngine{gate: make(chan struct{})}
	f := newPauser(t, true, engine)
	ctx := context.Background()
	stop := make(chan struct{})
	var helpers sync.WaitGroup
	helpers.Add(2)
	go func() { // the slow engine: lets a Pause through now and then
		defer helpers.Done()
		for {
			select {
			case engine.gate <- struct{}{}:
			case <-stop:
				return
			}
		}
	}()
	go func() { // drain events
		defer helpers.Done()
		for {
			select {
			case <-f.events:
			case <-stop:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for range 200 {
				switch r.IntN(3) {
				case 0:
					f.p.awaitBegin()
					f.p.awaitEnd(ctx)
				case 1:
					f.p.callBegin(ctx)
					f.p.callEnd()
				case 2:
					f.p.jobStarting()
					f.p.awaitBegin()
					f.p.jobStarted()
					f.p.awaitEnd(ctx)
				}
			}
		}()
	}
	wg.Wait()
	waitNoPause(t)
	close(stop)
	helpers.Wait()

	f.isPaused(t, false)
	_, calls := engine.state()
	for i, c := range calls {
		want := "pause"
		if i%2 == 1 {
			want = "unpause"
		}
		if c != want {
			t.Fatalf("call %d is %s, want %s: %v", i, c, want, calls)
		}
	}
	if engine.overlap {
		t.Error("engine calls overlapped")
	}
	n, _ := f.p.stats()
	if 2*n != len(calls) {
		t.Errorf("%d pauses counted, %d engine calls", n, len(calls))
	}
	f.p.mu.Lock()
	defer f.p.mu.Unlock()
	if f.p.awaits != 0 || f.p.others != 0 || f.p.starting != 0 {
		t.Errorf("counts left: %d awaits, %d others, %d starting", f.p.awaits, f.p.others, f.p.starting)
	}
}

func TestPauserRetriesUnpauseThenFailsTheBuild(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{unpauseErrs: 2})
	f.p.awaitBegin()
	f.next(t, events.ScriptPaused)
	f.p.awaitEnd(context.Background())
	f.next(t, events.ScriptResumed) // the third try thaws it
	f.isPaused(t, false)

	g := newPauser(t, true, &fakeEngine{unpauseErrs: unpauseTries})
	var failed error
	g.p.fail = func(err error) { failed = err }
	g.p.awaitBegin()
	g.next(t, events.ScriptPaused)
	g.p.awaitEnd(context.Background())
	if failed == nil || !strings.Contains(failed.Error(), "could not be unpaused") {
		t.Errorf("the build was failed with %v, want a word on the unpause", failed)
	}
}

func TestPauserCloseGivesBackWhatIsHeldAndPausesNoMore(t *testing.T) {
	f := newPauser(t, true, &fakeEngine{})
	f.p.awaitBegin()
	f.next(t, events.ScriptPaused)
	f.p.close(context.Background())
	f.next(t, events.ScriptResumed)
	if got := f.ledger.Used(); got != (Resources{}) {
		t.Errorf("the ledger still holds %v after close", got)
	}
	f.p.awaitBegin() // an await still in flight when the build ended
	waitNoPause(t)
	if f.p.isPaused() {
		t.Error("paused after close")
	}
	if got := f.ledger.Used(); got != (Resources{}) {
		t.Errorf("the ledger holds %v after close", got)
	}
}
