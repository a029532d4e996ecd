package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator/web/view"
	"github.com/monkeyci/monkeyci/events"
	monkeyci "github.com/monkeyci/monkeyci/sdk"
)

// scriptRepo writes a repository of the given files, all executable.
func scriptRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// inBusybox is a script.yaml that runs the script in busybox: it has sh.
const inBusybox = "image: " + busybox + "\n"

func (r *recorder) errOut(job string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.output[job+"/err"]; ok {
		return b.String()
	}
	return ""
}

// index returns the position of the first event matching, or -1.
func index(evs []events.Event, typ events.Type, job string) int {
	return slices.IndexFunc(evs, func(e events.Event) bool { return e.Type == typ && e.Job == job })
}

// meet is a job line for jobs that must run side by side: it says it is
// up, in the shared workspace, then waits (at most a minute) for other to
// say so, then stays a while for the script's pause to show.
func meet(self, other string) string {
	return fmt.Sprintf(`touch /workspace/%s-up; i=0; until [ -f /workspace/%s-up ] || [ $i -ge 600 ]; do sleep 0.1; i=$((i+1)); done; sleep 3`, self, other)
}

func TestShScriptRunsJobsInParallelAndIsPausedWhileItWaits(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := scriptRepo(t, map[string]string{
		".monkeyci/script.yaml": inBusybox,
		".monkeyci/build.sh": `set -e
monkeyci job run a --image ` + busybox + ` --detach -- '` + meet("a", "b") + `'
monkeyci job run b --image ` + busybox + ` --detach -- '` + meet("b", "a") + `'
monkeyci job wait a b
monkeyci job run c --image ` + busybox + ` --dep a --dep b -- 'echo c ran' 'sleep 2'
monkeyci job status c -o json
echo "param=$(monkeyci param get who)"
monkeyci param get nobody || echo "absent exit=$?"
`,
	})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir, Params: map[string]string{"who": "me"}}, rec)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%v %+v\nscript: %s%s", err, out, rec.out(""), rec.errOut(""))
	}
	for _, id := range []string{"a", "b", "c"} {
		if j := jobResult(t, out, id); j.Result != events.Success {
			t.Errorf("%s: %+v", id, j)
		}
	}
	evs := rec.all()
	// Frozen once a job's container is made, before it starts.
	firstMade := min(index(evs, events.JobInitializing, "a"), index(evs, events.JobInitializing, "b"))
	lastEnd := max(index(evs, events.JobEnd, "a"), index(evs, events.JobEnd, "b"))
	paused := slices.IndexFunc(evs[firstMade:], func(e events.Event) bool { return e.Type == events.ScriptPaused })
	if paused < 0 || firstMade+paused > lastEnd {
		t.Errorf("the script was not paused between the jobs' starts and ends: %v", types(evs))
	}
	// In parallel: each started before the other ended (each waited to
	// see the other up).
	if index(evs, events.JobStart, "b") > index(evs, events.JobEnd, "a") || index(evs, events.JobStart, "a") > index(evs, events.JobEnd, "b") {
		t.Errorf("a and b did not run side by side: %v", types(evs))
	}
	cMade := index(evs, events.JobInitializing, "c")
	if index(evs, events.JobStart, "c") < lastEnd {
		t.Errorf("c started before a and b had ended: %v", types(evs))
	}
	// `job run c` waits too: paused again while c runs.
	if again := slices.IndexFunc(evs[cMade:], func(e events.Event) bool { return e.Type == events.ScriptPaused }); again < 0 || cMade+again > index(evs, events.JobEnd, "c") {
		t.Errorf("the script was not paused while it waited on c: %v", types(evs))
	}
	if q := evs[index(evs, events.JobQueued, "c")]; !slices.Equal(q.Deps, []string{"a", "b"}) {
		t.Errorf("c queued with deps %v", q.Deps)
	}
	if got := rec.out("c"); got != "c ran\n" {
		t.Errorf("c's output %q", got)
	}
	script := rec.out("")
	for _, want := range []string{`"id": "c"`, `"state": "success"`, "param=me\n", "absent exit=1\n"} {
		if !strings.Contains(script, want) {
			t.Errorf("the script's output lacks %q:\n%s", want, script)
		}
	}
	if want := `monkeyci: the build has no parameter "nobody"`; !strings.Contains(rec.errOut(""), want) {
		t.Errorf("the script's stderr lacks %q:\n%s", want, rec.errOut(""))
	}
}

func types(evs []events.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, strings.TrimSuffix(string(e.Type)+" "+e.Job, " "))
	}
	return out
}

func TestScriptSeesAJobWithAMissingImageFail(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := scriptRepo(t, map[string]string{
		".monkeyci/script.yaml": inBusybox,
		".monkeyci/build.sh":    "monkeyci job run ghost --image monkeyci/no-such-image:1 -- true\necho \"ghost exit=$?\"\n",
	})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != events.Error || out.ScriptExit != 0 {
		t.Errorf("%+v, want an error from the job and a script that went on", out)
	}
	if got := rec.out(""); !strings.Contains(got, "ghost exit=1\n") {
		t.Errorf("script output %q, want ghost exit=1", got)
	}
	stderr := rec.errOut("")
	for _, want := range []string{"monkeyci: job ghost: error: ", "monkeyci/no-such-image:1", "not present locally"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the script's stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestScriptThatExitsNonZeroFailsTheBuild(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := scriptRepo(t, map[string]string{".monkeyci/script.yaml": inBusybox, ".monkeyci/build.sh": "echo bye\nexit 3\n"})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != events.Failure || out.ScriptExit != 3 {
		t.Errorf("%+v, want a failure with script exit 3", out)
	}
	if want := "monkeyci: .monkeyci/build.sh exited with code 3"; !strings.Contains(rec.errOut(""), want) {
		t.Errorf("stderr %q lacks %q", rec.errOut(""), want)
	}
}

func TestScriptInTheMinimalImageNeedsNoShellButShScriptsDo(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"build.sh", map[string]string{".monkeyci/build.sh": "echo hi\n"},
			".monkeyci/build.sh needs a shell, and this image has no sh: the agent's minimal image has none; name an image that has one in .monkeyci/script.yaml"},
		{"#!/bin/sh", map[string]string{".monkeyci/build": "#!/bin/sh\necho hi\n"},
			".monkeyci/build starts with #!/bin/sh, which this image lacks (the agent's minimal image has only monkeyci): name an image that has it in .monkeyci/script.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: scriptRepo(t, tc.files)}, rec)
			if err != nil {
				t.Fatal(err)
			}
			if out.Result != events.Failure || !strings.Contains(rec.errOut(""), tc.want) {
				t.Errorf("%+v, stderr %q; want a failure saying %q", out, rec.errOut(""), tc.want)
			}
		})
	}
}

func TestScriptYAMLSetsTheImageAndResources(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := scriptRepo(t, map[string]string{
		".monkeyci/script.yaml": inBusybox + "cpus: 0.5\nmemory: 256m\n",
		".monkeyci/build.sh": `command -v monkeyci
pwd
cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max
ls .monkeyci
`,
	})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%v %+v\n%s%s", err, out, rec.out(""), rec.errOut(""))
	}
	got := rec.out("")
	for _, want := range []string{"/opt/monkeyci/bin/monkeyci\n", "/workspace\n", "268435456\n", "50000\n", "build.sh\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestBadScriptYAMLFailsTheBuildNamingThePlace(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	tests := []struct{ yaml, want string }{
		{"image: " + busybox + "\nimgae: x\n", `.monkeyci/script.yaml:2:1: unknown key "imgae", expected one of image, cpus, memory`},
		{"image: monkeyci/no-such-image:1\n", "the script image named in .monkeyci/script.yaml: "},
		{"cpus: 64\n", "the script container (.monkeyci/script.yaml) needs 64 CPUs but the agent has 2 CPUs"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			dir := scriptRepo(t, map[string]string{".monkeyci/script.yaml": tc.yaml, ".monkeyci/build.sh": "true\n"})
			rec := newRecorder()
			out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
			if err == nil || !strings.Contains(err.Error(), tc.want) || out.Result != events.Error {
				t.Errorf("%v %+v, want an error saying %q", err, out, tc.want)
			}
			end := rec.all()[len(rec.all())-1]
			if end.Type != events.BuildEnd || !strings.Contains(end.Message, tc.want) {
				t.Errorf("build/end %+v", end)
			}
		})
	}
}

func TestDeclarativeFilesAndAScriptTogetherFailSayingSo(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := scriptRepo(t, map[string]string{
		".monkeyci/build.yaml": "id: a\nimage: " + busybox + "\nscript: [\"true\"]\n",
		".monkeyci/build.sh":   "true\n",
	})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	want := "the repository has both declarative build files (.monkeyci/build.yaml) and a build script (.monkeyci/build.sh): keep one or the other"
	if err == nil || !strings.Contains(err.Error(), want) || out.Result != events.Error || len(out.Jobs) != 0 {
		t.Errorf("%v %+v; want an error saying %q", err, out, want)
	}
	if rec.count(events.ScriptStart) != 0 {
		t.Error("a script container started for a build defined twice")
	}
	end := rec.all()[len(rec.all())-1]
	if end.Type != events.BuildEnd || !strings.Contains(end.Message, want) {
		t.Errorf("build/end %+v, want it to say %q", end, want)
	}
}

func TestActionIsAJobOfItsOwnAndKeepsTheScriptThawed(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := scriptRepo(t, map[string]string{
		".monkeyci/script.yaml": inBusybox,
		".monkeyci/build.sh": `monkeyci job run a --image ` + busybox + ` --detach -- 'sleep 3'
monkeyci job action act -- sh -c 'echo acting; echo warning >&2; monkeyci job wait a; echo after'
monkeyci job action broken --dep act -- sh -c 'exit 4' || echo "broken exit=$?"
monkeyci job action never --dep broken -- true || echo "never exit=$?"
monkeyci job action act -- true || echo "again exit=$?"
`,
	})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil {
		t.Fatal(err)
	}
	if out.Result != events.Failure || out.ScriptExit != 0 {
		t.Errorf("%+v, want a failure (broken failed) from a script that went on", out)
	}
	if j := jobResult(t, out, "act"); j.Result != events.Success || j.Duration <= 0 {
		t.Errorf("act: %+v", j)
	}
	if j := jobResult(t, out, "broken"); j.Result != events.Failure || j.Exit != 4 || j.Message != "exited with code 4" {
		t.Errorf("broken: %+v", j)
	}
	if j := jobResult(t, out, "never"); j.Result != events.Skipped || j.Message != "dependency broken ended with failure" {
		t.Errorf("never: %+v", j)
	}
	evs := rec.all()
	queued, start, end := index(evs, events.JobQueued, "act"), index(evs, events.JobStart, "act"), index(evs, events.JobEnd, "act")
	if queued < 0 || start < queued || end < start {
		t.Fatalf("act's events out of order: %v", types(evs))
	}
	if !evs[queued].Action || evs[index(evs, events.JobQueued, "a")].Action {
		t.Errorf("job/queued marks act an action: %v, a: %v", evs[queued].Action, evs[index(evs, events.JobQueued, "a")].Action)
	}
	if evs[end].Status != events.Success || evs[end].Exit == nil || *evs[end].Exit != 0 || evs[end].Duration <= 0 {
		t.Errorf("act's job/end %+v", evs[end])
	}
	// a ended while the action awaited it: the script worked, no pause.
	if aEnd := index(evs, events.JobEnd, "a"); aEnd < start || aEnd > end {
		t.Errorf("a did not end during the action: %v", types(evs))
	}
	for _, e := range evs[start:end] {
		if e.Type == events.ScriptPaused {
			t.Errorf("the script was paused during the action: %v", types(evs))
		}
	}
	// The dashboard draws it as any job, marked an action: a node in the
	// graph, a row in the timeline, from these same events.
	nodes := map[string]view.JobNode{}
	for _, n := range view.Jobs(evs) {
		nodes[n.ID] = n
	}
	if n := nodes["act"]; n.State != view.StateSuccess || !n.Action || nodes["a"].Action || nodes["broken"].State != view.StateFailure || !slices.Equal(nodes["broken"].Deps, []string{"act"}) {
		t.Errorf("the dashboard's jobs: %+v", nodes)
	}
	tl := view.BuildTimeline(evs, time.Now())
	if row := slices.IndexFunc(tl.Rows, func(r view.Row) bool { return r.Label == "act" && len(r.Spans) > 0 }); row < 0 {
		t.Errorf("no timeline row for act: %+v", tl.Rows)
	}
	if got := rec.out("act"); got != "acting\nafter\n" {
		t.Errorf("act's stdout %q", got)
	}
	if got := rec.errOut("act"); got != "warning\n" {
		t.Errorf("act's stderr %q", got)
	}
	script := rec.out("")
	for _, want := range []string{"broken exit=1\n", "never exit=1\n", "again exit=1\n"} {
		if !strings.Contains(script, want) {
			t.Errorf("script output lacks %q:\n%s", want, script)
		}
	}
	stderr := rec.errOut("")
	for _, want := range []string{"monkeyci: job broken: failure: exited with code 4", "monkeyci: job never: skipped: dependency broken ended with failure", "already started"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("script stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// Each build has its own socket and token: a script that knew another
// build's token could not use it on its own socket, nor reach the other's.
func TestAnotherBuildsTokenIsRefused(t *testing.T) {
	f := newFixture(t, agent.Resources{MilliCPUs: 4000, Memory: 8 << 30}, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	script := map[string]string{
		".monkeyci/script.yaml": inBusybox,
		".monkeyci/build.sh":    "echo \"token=$MONKEYCI_TOKEN\"\nmonkeyci job run hold --image " + busybox + " -- 'sleep 600'\n",
	}
	ids := []string{fmt.Sprintf("token-a-%d", os.Getpid()), fmt.Sprintf("token-b-%d", os.Getpid())}
	recs := []*recorder{newRecorder(), newRecorder()}
	done := make(chan struct{}, 2)
	for i := range ids {
		go func() {
			defer func() { done <- struct{}{} }()
			_, _ = f.runner.Run(ctx, agent.BuildSpec{ID: ids[i], Source: scriptRepo(t, script)}, recs[i])
		}()
	}
	defer func() { cancel(); <-done; <-done }()
	tokens := make([]string, 2)
	for i, rec := range recs {
		rec.waitFor(t, "hold's start", func(e events.Event) bool { return e.Type == events.JobStart && e.Job == "hold" })
		for _, line := range strings.Split(rec.out(""), "\n") {
			if v, ok := strings.CutPrefix(line, "token="); ok {
				tokens[i] = v
			}
		}
		if tokens[i] == "" {
			t.Fatalf("build %s printed no token: %q", ids[i], rec.out(""))
		}
	}
	socket := func(id string) string { return "unix://" + agent.SocketOf(f.runner, id) }
	status := func(sock, token string) error {
		c, err := monkeyci.Dial(ctx, sock, token)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.Status(ctx, "hold")
		return err
	}
	if err := status(socket(ids[0]), tokens[0]); err != nil {
		t.Fatalf("build a's own token: %v", err)
	}
	for _, tc := range []struct{ sock, token string }{{socket(ids[0]), tokens[1]}, {socket(ids[1]), tokens[0]}} {
		err := status(tc.sock, tc.token)
		if codeOf(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "does not carry the build's token") {
			t.Errorf("%s with another build's token: %v, want Unauthenticated", tc.sock, err)
		}
	}
}

func codeOf(err error) codes.Code { return status.Code(err) }
