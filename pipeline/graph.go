package pipeline

import (
	"fmt"
	"slices"

	"github.com/monkeyci/monkeyci/events"
)

// State is where a job is in a build.
type State string

// States. The last five are final.
const (
	StatePending  State = "pending"
	StateBlocked  State = "blocked" // waits for Unblock (a manual approval)
	StateRunning  State = "running"
	StateSuccess  State = "success"
	StateFailure  State = "failure"
	StateError    State = "error"
	StateCanceled State = "canceled"
	StateSkipped  State = "skipped"
)

// Graph is the scheduling state of a build's jobs. It is not safe for
// concurrent use; its owner serialises calls.
type Graph struct {
	ids        []string
	index      map[string]int
	deps       [][]int
	dependents [][]int
	state      []State
	// service marks the jobs that serve ports: their dependents may start
	// once they run (the agent holds them until the ports accept).
	service []bool
}

// NewGraph starts every job pending, or blocked when it says so. It expects
// a validated plan; still, a repeated id is ignored after its first job, and
// a job that could never run (unknown dependency, cycle) starts skipped.
func NewGraph(jobs []Job) *Graph {
	g := &Graph{index: map[string]int{}}
	var kept []Job
	for _, j := range jobs {
		if _, dup := g.index[j.ID]; dup {
			continue
		}
		g.index[j.ID] = len(g.ids)
		g.ids = append(g.ids, j.ID)
		kept = append(kept, j)
	}
	n := len(g.ids)
	g.deps = make([][]int, n)
	g.dependents = make([][]int, n)
	g.state = make([]State, n)
	g.service = make([]bool, n)
	var impossible []int
	for i, j := range kept {
		g.state[i] = StatePending
		g.service[i] = j.Service()
		if j.Blocked {
			g.state[i] = StateBlocked
		}
		for _, d := range j.Dependencies {
			k, ok := g.index[d]
			if !ok {
				impossible = append(impossible, i)
				continue
			}
			if !slices.Contains(g.deps[i], k) {
				g.deps[i] = append(g.deps[i], k)
				g.dependents[k] = append(g.dependents[k], i)
			}
		}
	}
	impossible = append(impossible, g.inCycles()...)
	for _, i := range impossible {
		if g.state[i] != StateSkipped {
			g.state[i] = StateSkipped
			g.skipDependents(i)
		}
	}
	return g
}

// inCycles returns the jobs a topological sort cannot order: those in a
// cycle or after one.
func (g *Graph) inCycles() []int {
	missing := make([]int, len(g.ids))
	var queue []int
	for i := range g.ids {
		missing[i] = len(g.deps[i])
		if missing[i] == 0 {
			queue = append(queue, i)
		}
	}
	done := make([]bool, len(g.ids))
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		done[i] = true
		for _, k := range g.dependents[i] {
			if missing[k]--; missing[k] == 0 {
				queue = append(queue, k)
			}
		}
	}
	var out []int
	for i, ok := range done {
		if !ok {
			out = append(out, i)
		}
	}
	return out
}

func (g *Graph) lookup(id string) (int, error) {
	i, ok := g.index[id]
	if !ok {
		return 0, fmt.Errorf("unknown job %q", id)
	}
	return i, nil
}

func (g *Graph) ready(i int) bool {
	if g.state[i] != StatePending {
		return false
	}
	for _, d := range g.deps[i] {
		if !g.satisfies(d) {
			return false
		}
	}
	return true
}

// satisfies says whether job d lets its dependents start: it succeeded, or
// it is a service that runs.
func (g *Graph) satisfies(d int) bool {
	return g.state[d] == StateSuccess || g.service[d] && g.state[d] == StateRunning
}

// Ready returns the pending jobs whose dependencies all succeeded (or, for
// a service, run), in declaration order.
func (g *Graph) Ready() []string {
	var out []string
	for i, id := range g.ids {
		if g.ready(i) {
			out = append(out, id)
		}
	}
	return out
}

// Start moves a ready job to running.
func (g *Graph) Start(id string) error {
	i, err := g.lookup(id)
	if err != nil {
		return err
	}
	if g.state[i] != StatePending {
		return fmt.Errorf("cannot start job %q: it is %s, not pending", id, g.state[i])
	}
	for _, d := range g.deps[i] {
		if !g.satisfies(d) {
			return fmt.Errorf("cannot start job %q: dependency %q is %s", id, g.ids[d], g.state[d])
		}
	}
	g.state[i] = StateRunning
	return nil
}

var resultStates = map[events.Result]State{
	events.Success:  StateSuccess,
	events.Failure:  StateFailure,
	events.Error:    StateError,
	events.Canceled: StateCanceled,
	events.Skipped:  StateSkipped,
}

// Finish ends a running job. When it did not succeed, every job that
// depends on it, directly or not, and has not started is skipped; those are
// returned in declaration order.
func (g *Graph) Finish(id string, r events.Result) ([]string, error) {
	i, err := g.lookup(id)
	if err != nil {
		return nil, err
	}
	st, ok := resultStates[r]
	if !ok {
		return nil, fmt.Errorf("cannot finish job %q: unknown result %q", id, r)
	}
	if g.state[i] != StateRunning {
		return nil, fmt.Errorf("cannot finish job %q: it is %s, not running", id, g.state[i])
	}
	g.state[i] = st
	if st == StateSuccess {
		return nil, nil
	}
	var out []string
	for _, k := range g.skipDependents(i) {
		out = append(out, g.ids[k])
	}
	return out, nil
}

// skipDependents skips the waiting jobs downstream of i and returns them
// sorted by declaration.
func (g *Graph) skipDependents(i int) []int {
	var out []int
	queue := []int{i}
	for len(queue) > 0 {
		j := queue[0]
		queue = queue[1:]
		for _, k := range g.dependents[j] {
			if g.state[k] == StatePending || g.state[k] == StateBlocked {
				g.state[k] = StateSkipped
				out = append(out, k)
				queue = append(queue, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Skip skips a job that has not started (pending or blocked), because the
// caller chose not to run it (its `when` does not hold), and every job that
// depends on it; those are returned in declaration order.
func (g *Graph) Skip(id string) ([]string, error) {
	i, err := g.lookup(id)
	if err != nil {
		return nil, err
	}
	if g.state[i] != StatePending && g.state[i] != StateBlocked {
		return nil, fmt.Errorf("cannot skip job %q: it is %s, not pending or blocked", id, g.state[i])
	}
	g.state[i] = StateSkipped
	var out []string
	for _, k := range g.skipDependents(i) {
		out = append(out, g.ids[k])
	}
	return out, nil
}

// Unblock lets a blocked job run once its dependencies succeed.
func (g *Graph) Unblock(id string) error {
	i, err := g.lookup(id)
	if err != nil {
		return err
	}
	if g.state[i] != StateBlocked {
		return fmt.Errorf("cannot unblock job %q: it is %s, not blocked", id, g.state[i])
	}
	g.state[i] = StatePending
	return nil
}

// Cancel cancels every job that has not started and returns them. Running
// jobs are the caller's to stop; it reports them with Finish.
func (g *Graph) Cancel() []string {
	var out []string
	for i, id := range g.ids {
		if g.state[i] == StatePending || g.state[i] == StateBlocked {
			g.state[i] = StateCanceled
			out = append(out, id)
		}
	}
	return out
}

// Unneeded returns the running services no job waits for any more, in
// declaration order: every job that depends on one has ended (or will
// never start), or, for a service nothing depends on, every job but the
// services has. They are the caller's to stop.
func (g *Graph) Unneeded() []string {
	othersOver := true
	for i, s := range g.state {
		if !g.service[i] && !s.final() {
			othersOver = false
		}
	}
	var out []string
	for i, id := range g.ids {
		if !g.service[i] || g.state[i] != StateRunning {
			continue
		}
		over := len(g.dependents[i]) > 0 || othersOver
		for _, k := range g.dependents[i] {
			if !g.state[k].final() {
				over = false
			}
		}
		if over {
			out = append(out, id)
		}
	}
	return out
}

// final says whether a job in this state has ended or never will start.
func (s State) final() bool {
	switch s {
	case StatePending, StateBlocked, StateRunning:
		return false
	}
	return true
}

// State returns a job's state, "" for an unknown id.
func (g *Graph) State(id string) State {
	if i, ok := g.index[id]; ok {
		return g.state[i]
	}
	return ""
}

// Done reports that nothing runs and nothing can start: what is left, if
// anything, waits for an Unblock.
func (g *Graph) Done() bool {
	for i, s := range g.state {
		if s == StateRunning || g.ready(i) {
			return false
		}
	}
	return true
}

// Result is the build's result. A failed job makes the build fail even when
// another one errored: failure is a verdict on the code that a retry will
// not change, error only says a job could not be judged. Then come error,
// then canceled; jobs that never finished (left blocked, say) count as
// canceled. Skipped jobs alone do not spoil a success: a job is only
// skipped because of another one's result, or because it chose to be.
func (g *Graph) Result() events.Result {
	has := map[State]bool{}
	for _, s := range g.state {
		has[s] = true
	}
	switch {
	case has[StateFailure]:
		return events.Failure
	case has[StateError]:
		return events.Error
	case has[StateCanceled], has[StatePending], has[StateBlocked], has[StateRunning]:
		return events.Canceled
	}
	return events.Success
}

// Layers groups jobs by the length of the longest dependency chain before
// them, for display; each layer is in declaration order.
func (g *Graph) Layers() [][]string {
	depth := make([]int, len(g.ids))
	for i := range depth {
		depth[i] = -1
	}
	onPath := make([]bool, len(g.ids))
	var visit func(i int) int
	visit = func(i int) int {
		if depth[i] >= 0 {
			return depth[i]
		}
		if onPath[i] { // a cycle: NewGraph skipped these, depth is moot
			return 0
		}
		onPath[i] = true
		d := 0
		for _, k := range g.deps[i] {
			d = max(d, visit(k)+1)
		}
		onPath[i] = false
		depth[i] = d
		return d
	}
	var layers [][]string
	for i := range g.ids {
		for d := visit(i); len(layers) <= d; {
			layers = append(layers, nil)
		}
	}
	for i, id := range g.ids {
		layers[depth[i]] = append(layers[depth[i]], id)
	}
	return layers
}
