package pipeline

import (
	"reflect"
	"testing"

	"github.com/monkeyci/monkeyci/events"
)

// diamond: a -> b, c -> d, and e alone.
func diamond() []Job {
	return []Job{
		{ID: "a"},
		{ID: "b", Dependencies: []string{"a"}},
		{ID: "c", Dependencies: []string{"a"}},
		{ID: "d", Dependencies: []string{"b", "c"}},
		{ID: "e"},
	}
}

func mustStart(t *testing.T, g *Graph, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := g.Start(id); err != nil {
			t.Fatal(err)
		}
	}
}

func finish(t *testing.T, g *Graph, id string, r events.Result) []string {
	t.Helper()
	skipped, err := g.Finish(id, r)
	if err != nil {
		t.Fatal(err)
	}
	return skipped
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %v, want %v", what, got, want)
	}
}

func TestGraphSuccess(t *testing.T) {
	g := NewGraph(diamond())
	eq(t, "ready", g.Ready(), []string{"a", "e"})
	mustStart(t, g, "a", "e")
	eq(t, "ready while running", g.Ready(), []string(nil))
	eq(t, "done", g.Done(), false)
	finish(t, g, "a", events.Success)
	eq(t, "ready after a", g.Ready(), []string{"b", "c"})
	mustStart(t, g, "b", "c")
	finish(t, g, "b", events.Success)
	eq(t, "d waits for c", g.Ready(), []string(nil))
	finish(t, g, "c", events.Success)
	eq(t, "ready after c", g.Ready(), []string{"d"})
	mustStart(t, g, "d")
	finish(t, g, "d", events.Success)
	finish(t, g, "e", events.Success)
	eq(t, "done", g.Done(), true)
	eq(t, "result", g.Result(), events.Success)
}

func TestGraphFailureSkipsTransitively(t *testing.T) {
	g := NewGraph(diamond())
	mustStart(t, g, "a", "e")
	eq(t, "skipped", finish(t, g, "a", events.Failure), []string{"b", "c", "d"})
	eq(t, "state d", g.State("d"), StateSkipped)
	eq(t, "done while e runs", g.Done(), false)
	finish(t, g, "e", events.Success)
	eq(t, "done", g.Done(), true)
	eq(t, "result", g.Result(), events.Failure)
}

func TestGraphResultOrder(t *testing.T) {
	two := []Job{{ID: "a"}, {ID: "b"}}
	for _, tt := range []struct {
		a, b events.Result
		want events.Result
	}{
		{events.Success, events.Success, events.Success},
		{events.Success, events.Skipped, events.Success},
		{events.Error, events.Failure, events.Failure},
		{events.Failure, events.Error, events.Failure},
		{events.Error, events.Canceled, events.Error},
		{events.Canceled, events.Success, events.Canceled},
	} {
		g := NewGraph(two)
		mustStart(t, g, "a", "b")
		finish(t, g, "a", tt.a)
		finish(t, g, "b", tt.b)
		eq(t, string(tt.a)+"+"+string(tt.b), g.Result(), tt.want)
	}
}

func TestGraphBlocked(t *testing.T) {
	g := NewGraph([]Job{{ID: "build"}, {ID: "deploy", Blocked: true, Dependencies: []string{"build"}}, {ID: "notify", Dependencies: []string{"deploy"}}})
	eq(t, "state", g.State("deploy"), StateBlocked)
	mustStart(t, g, "build")
	finish(t, g, "build", events.Success)
	eq(t, "blocked is not ready", g.Ready(), []string(nil))
	eq(t, "done while blocked", g.Done(), true)
	if err := g.Unblock("deploy"); err != nil {
		t.Fatal(err)
	}
	eq(t, "ready after unblock", g.Ready(), []string{"deploy"})
	if err := g.Unblock("deploy"); err == nil {
		t.Error("second unblock: no error")
	}
	mustStart(t, g, "deploy")
	finish(t, g, "deploy", events.Success)
	mustStart(t, g, "notify")
	finish(t, g, "notify", events.Success)
	eq(t, "result", g.Result(), events.Success)
}

func TestGraphBlockedDependentIsSkipped(t *testing.T) {
	g := NewGraph([]Job{{ID: "build"}, {ID: "deploy", Blocked: true, Dependencies: []string{"build"}}})
	mustStart(t, g, "build")
	eq(t, "skipped", finish(t, g, "build", events.Error), []string{"deploy"})
	eq(t, "result", g.Result(), events.Error)
}

func TestGraphCancel(t *testing.T) {
	g := NewGraph([]Job{{ID: "a"}, {ID: "b", Dependencies: []string{"a"}}, {ID: "c", Blocked: true}})
	mustStart(t, g, "a")
	eq(t, "canceled", g.Cancel(), []string{"b", "c"})
	eq(t, "done while a runs", g.Done(), false)
	eq(t, "skipped after cancel", finish(t, g, "a", events.Canceled), []string(nil))
	eq(t, "done", g.Done(), true)
	eq(t, "result", g.Result(), events.Canceled)
}

func TestGraphMisuse(t *testing.T) {
	g := NewGraph(diamond())
	if err := g.Start("b"); err == nil {
		t.Error("start before dependency: no error")
	}
	if err := g.Start("zz"); err == nil {
		t.Error("start unknown: no error")
	}
	if _, err := g.Finish("a", events.Success); err == nil {
		t.Error("finish pending: no error")
	}
	mustStart(t, g, "a")
	if err := g.Start("a"); err == nil {
		t.Error("start twice: no error")
	}
	if _, err := g.Finish("a", "maybe"); err == nil {
		t.Error("unknown result: no error")
	}
	eq(t, "unknown state", g.State("zz"), State(""))
}

func TestGraphImpossibleJobsStartSkipped(t *testing.T) {
	g := NewGraph([]Job{{ID: "a", Dependencies: []string{"ghost"}}, {ID: "b", Dependencies: []string{"c"}}, {ID: "c", Dependencies: []string{"b"}}, {ID: "d", Dependencies: []string{"a"}}, {ID: "e"}})
	for id, want := range map[string]State{"a": StateSkipped, "b": StateSkipped, "c": StateSkipped, "d": StateSkipped, "e": StatePending} {
		eq(t, id, g.State(id), want)
	}
	eq(t, "ready", g.Ready(), []string{"e"})
}

func TestGraphLayers(t *testing.T) {
	jobs := append(diamond(), Job{ID: "f", Dependencies: []string{"a", "d"}})
	eq(t, "layers", NewGraph(jobs).Layers(), [][]string{{"a", "e"}, {"b", "c"}, {"d"}, {"f"}})
	eq(t, "empty", NewGraph(nil).Layers(), [][]string(nil))
}

func TestGraphSkip(t *testing.T) {
	jobs := diamond()
	jobs[2].Blocked = true // c
	g := NewGraph(jobs)
	skipped, err := g.Skip("b")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "dependents of b", skipped, []string{"d"})
	eq(t, "b", g.State("b"), StateSkipped)
	skipped, err = g.Skip("c") // blocked: skipped without an unblock
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "dependents of c, d already skipped", skipped, []string(nil))
	eq(t, "ready", g.Ready(), []string{"a", "e"})
	mustStart(t, g, "a")
	if _, err := g.Skip("a"); err == nil {
		t.Error("skipped a running job")
	}
	if _, err := g.Skip("d"); err == nil {
		t.Error("skipped a skipped job")
	}
	if _, err := g.Skip("nope"); err == nil {
		t.Error("skipped an unknown job")
	}
	finish(t, g, "a", events.Success)
	mustStart(t, g, "e")
	finish(t, g, "e", events.Success)
	eq(t, "done", g.Done(), true)
	eq(t, "skips do not spoil a success", g.Result(), events.Success)
}

// A service's dependents may start once it runs; it is no longer needed
// once they have all ended, and a service nothing depends on once every
// other job has.
func TestGraphServices(t *testing.T) {
	g := NewGraph([]Job{
		{ID: "build"},
		{ID: "db", Expose: []int{5432}},
		{ID: "it", Dependencies: []string{"db", "build"}},
		{ID: "e2e", Dependencies: []string{"db"}},
		{ID: "mock", Expose: []int{80}},
	})
	eq(t, "ready at first", g.Ready(), []string{"build", "db", "mock"})
	mustStart(t, g, "build", "db", "mock")
	eq(t, "ready once db runs", g.Ready(), []string{"e2e"})
	mustStart(t, g, "e2e")
	eq(t, "unneeded while its dependents wait", g.Unneeded(), []string(nil))
	finish(t, g, "build", events.Success)
	mustStart(t, g, "it")
	finish(t, g, "e2e", events.Success)
	eq(t, "unneeded while one dependent runs", g.Unneeded(), []string(nil))
	finish(t, g, "it", events.Failure)
	eq(t, "unneeded once all have ended", g.Unneeded(), []string{"db", "mock"})
	finish(t, g, "db", events.Success)
	finish(t, g, "mock", events.Success)
	eq(t, "result", g.Result(), events.Failure)
}

// A service that ends before its dependents start skips them, as any
// dependency that did not succeed; a dependent skipped for another reason
// lets the service go.
func TestGraphServiceEnded(t *testing.T) {
	g := NewGraph([]Job{
		{ID: "db", Expose: []int{5432}},
		{ID: "lint"},
		{ID: "it", Dependencies: []string{"db", "lint"}},
	})
	mustStart(t, g, "db", "lint")
	eq(t, "skipped with lint", finish(t, g, "lint", events.Failure), []string{"it"})
	eq(t, "db unneeded", g.Unneeded(), []string{"db"})

	g = NewGraph([]Job{{ID: "db", Expose: []int{5432}}, {ID: "it", Dependencies: []string{"db"}}})
	mustStart(t, g, "db")
	eq(t, "skipped with db", finish(t, g, "db", events.Error), []string{"it"})
}
