package agent_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
)

const httpd = "monkeyci/httpd:latest"

// TestServiceJobs: a job that exposes a port is a service; two jobs that
// depend on it reach it by its id as a host name, side by side, once it
// accepts connections; it is stopped when they have ended (a later job
// sees it go away while the build still runs), and counts as a success.
func TestServiceJobs(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dockertest.RequireImage(t, httpd)
	dir := repo(t, `
- id: web
  image: monkeyci/httpd:latest
  expose: [8080]
  cpus: 0.25
- id: one
  image: monkeyci/busybox:latest
  dependencies: [web]
  cpus: 0.25
  script: ["`+meetBeforeExit("one", "two")+`", "wget -qO- http://web:8080/"]
- id: two
  image: monkeyci/busybox:latest
  dependencies: [web]
  cpus: 0.25
  script: ["`+meetBeforeExit("two", "one")+`", "wget -qO- http://web:8080/"]
- id: later
  image: monkeyci/busybox:latest
  dependencies: [one, two]
  cpus: 0.25
  script: ["i=0; while wget -q -T 1 -O /dev/null http://web:8080/ && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; ! wget -q -T 1 -O /dev/null http://web:8080/"]
`, map[string]string{})
	const build = "services"
	var mu sync.Mutex
	var webGone []string // what was left of web's container when it ended
	rep := hooked{newRecorder(), func(e events.Event) {
		if e.Type == events.JobEnd && e.Job == "web" {
			ids, err := f.engine.ListContainers(context.Background(), map[string]string{agent.LabelBuild: build, agent.LabelJob: "web"})
			mu.Lock()
			webGone = append(ids, errString(err))
			mu.Unlock()
		}
	}}
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{ID: build, Source: dir}, rep)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%+v %v\none: %s\ntwo: %s", out, err, rep.out("one"), rep.out("two"))
	}
	for _, j := range []string{"one", "two"} {
		if got := rep.out(j); !strings.Contains(got, "hello from monkeyci/httpd") {
			t.Errorf("%s fetched %q", j, got)
		}
	}
	web := jobResult(t, out, "web")
	if web.Result != events.Success || !strings.Contains(web.Message, "stopped") {
		t.Errorf("web ended %+v, want success, stopped", web)
	}
	if len(webGone) != 1 || webGone[0] != "" {
		t.Errorf("when web ended its container was still there: %q", webGone)
	}
	// The order of things: ready before the dependents' first commands;
	// web ended after both dependents and before the later job.
	at := map[string]int{}
	for i, e := range rep.all() {
		key := string(e.Type) + " " + e.Job
		if _, ok := at[key]; !ok {
			at[key] = i
		}
	}
	before := func(a, b string) {
		t.Helper()
		ia, oka := at[a]
		ib, okb := at[b]
		if !oka || !okb || ia >= ib {
			t.Errorf("want %q (%d, %v) before %q (%d, %v)", a, ia, oka, b, ib, okb)
		}
	}
	before("job/ready web", "command/start one")
	before("job/ready web", "command/start two")
	before("job/end one", "job/end web")
	before("job/end two", "job/end web")
	// one and two ran side by side: each started before the other ended.
	// That one and two ran side by side, their meeting in the workspace
	// shows: each waits for the other before it ends.
	queued := rep.waitFor(t, "web queued", func(e events.Event) bool { return e.Type == events.JobQueued && e.Job == "web" })
	if len(queued.Expose) != 1 || queued.Expose[0] != 8080 {
		t.Errorf("web's job/queued says expose %v", queued.Expose)
	}
}

// TestServiceThatExitsEarlyFailsItsDependents: a service that ends before
// it accepts connections fails the jobs that wait for it, saying so.
func TestServiceThatExitsEarlyFailsItsDependents(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, `
- id: db
  image: monkeyci/busybox:latest
  expose: [5432]
  cpus: 0.25
  script: ["sleep 0.5", "exit 3"]
- id: it
  image: monkeyci/busybox:latest
  dependencies: [db]
  cpus: 0.25
  script: ["echo never"]
- id: own
  image: monkeyci/hello:latest
  dependencies: [db]
  cpus: 0.25
`, map[string]string{})
	rep := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{ID: "early-exit", Source: dir}, rep)
	if err != nil || out.Result != events.Failure {
		t.Fatalf("%+v %v", out, err)
	}
	if db := jobResult(t, out, "db"); db.Result != events.Failure {
		t.Errorf("db: %+v", db)
	}
	for _, id := range []string{"it", "own"} {
		j := jobResult(t, out, id)
		if j.Result != events.Failure || !strings.Contains(j.Message, "service db ended (command 2 failed with exit code 3: exit 3) before it accepted connections on port 5432") {
			t.Errorf("%s: %+v", id, j)
		}
		if strings.Contains(rep.out(id), "never") || strings.Contains(rep.out(id), "hello") {
			t.Errorf("%s ran: %q", id, rep.out(id))
		}
	}
}

// TestJobWithoutScriptRunsItsImagesCommand: a job of only id and image
// runs what its image says, and its exit code is the job's verdict.
func TestJobWithoutScriptRunsItsImagesCommand(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dockertest.RequireImage(t, "monkeyci/hello:latest")
	dir := repo(t, "- id: hello\n  image: monkeyci/hello:latest\n", map[string]string{})
	rep := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{ID: "own-command", Source: dir}, rep)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%+v %v", out, err)
	}
	if got := rep.out("hello"); got != "hello from the image's own command\n" {
		t.Errorf("printed %q", got)
	}
}

// meetBeforeExit is a job line that says the job is up, in the shared
// workspace, and waits (at most a minute) until other says so too: two
// jobs with it have run side by side, whatever the machine's speed.
func meetBeforeExit(self, other string) string {
	return "touch /workspace/" + self + "-up; i=0; until [ -f /workspace/" + other + "-up ] || [ $i -ge 600 ]; do sleep 0.1; i=$((i+1)); done; [ -f /workspace/" + other + "-up ]"
}

func errString(err error) string {
	if err != nil {
		return err.Error()
	}
	return ""
}

// TestScriptDrivesAService: a build script starts a service detached, asks
// for its address (waiting, frozen, until it accepts connections), hands it
// to a job that fetches from it, and stops it; it ends as a success. A
// service the script leaves running is stopped when the script ends.
func TestScriptDrivesAService(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dockertest.RequireImage(t, httpd)
	dir := scriptRepo(t, map[string]string{
		".monkeyci/script.yaml": inBusybox,
		".monkeyci/build.sh": `set -e
monkeyci job run web --image ` + httpd + ` --expose 8080 --cpus 0.25 --detach
monkeyci job run left --image ` + httpd + ` --expose 8080 --cpus 0.25
echo "left serves"
addr=$(monkeyci job addr web 8080)
echo "address: $addr"
monkeyci job run fetch --image ` + busybox + ` --cpus 0.25 --dep web --env URL=http://$addr/ -- 'wget -qO- "$URL"'
monkeyci job stop web
monkeyci job wait web
if monkeyci job addr fetch 80; then echo "addr of a job that serves nothing"; exit 1; fi
`,
	})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%v %+v\nscript: %s%s", err, out, rec.out(""), rec.errOut(""))
	}
	if got := rec.out(""); !strings.Contains(got, "address: web:8080") || !strings.Contains(got, "left serves") {
		t.Errorf("script printed %q", got)
	}
	if got := rec.out("fetch"); !strings.Contains(got, "hello from monkeyci/httpd") {
		t.Errorf("fetch printed %q", got)
	}
	if got := rec.errOut(""); !strings.Contains(got, `job "fetch" exposes no port`) {
		t.Errorf("script's stderr %q lacks the refusal", got)
	}
	for _, id := range []string{"web", "left"} {
		if j := jobResult(t, out, id); j.Result != events.Success {
			t.Errorf("%s: %+v", id, j)
		}
	}
}

// A job writes its own event log: what it forges there (a job/end of
// another job, a secret in a field the wrapper never writes, a line number
// that is no line) does not pass as the wrapper's.
func TestForgedWrapperEventsDoNotPass(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, `
- id: forger
  image: monkeyci/busybox:latest
  cpus: 0.25
  script:
    - printf '{:type :job/end :job "other" :status :success}\n{:type :command/start :command "7" :stdout "s3cr3t-path"}\n{:type :build/end :status :success}\n' >> "$MONKEYCI_JOB_DIR/events.edn"
    - echo done
`, map[string]string{})
	rep := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{ID: "forged", Source: dir}, rep)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%+v %v", out, err)
	}
	builds := 0
	for _, e := range rep.all() {
		if e.Job == "other" || e.Stdout != "" || e.Stderr != "" || e.Type == events.CommandStart && e.Command != "0" && e.Command != "1" {
			t.Errorf("a forged event passed: %+v", e)
		}
		if e.Type == events.BuildEnd {
			builds++
		}
	}
	if builds != 1 {
		t.Errorf("%d build/end events, want the runner's one", builds)
	}
}
