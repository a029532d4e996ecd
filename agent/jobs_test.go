package agent_test

import (
	"context"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/events"
)

func TestJobGetsEnvWorkDirAndLimits(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, `
id: env
image: monkeyci/busybox:latest
work-dir: sub
memory: 512m
env: {GREETING: "hello there", EMPTY: ""}
script:
  - pwd
  - echo "$GREETING/$MONKEYCI_JOB_ID/${EMPTY:-unset-or-empty}"
  - cat here.txt
  - cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max
`, map[string]string{"sub/here.txt": "in sub\n"})
	rec := newRecorder()
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec)
	if err != nil || out.Result != events.Success {
		t.Fatalf("%v %+v\n%s", err, out, rec.out("env"))
	}
	got := rec.out("env")
	for _, want := range []string{"/workspace/sub\n", "hello there/env/unset-or-empty\n", "in sub\n", "536870912\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestCachesAreKeptAcrossBuildsOfARepository(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, `
id: cached
image: monkeyci/busybox:latest
caches: [{id: deps, path: .deps}]
script:
  - mkdir -p .deps && cat .deps/count 2>/dev/null || echo none
  - echo "$(( $(cat .deps/count 2>/dev/null || echo 0) + 1 ))" > .deps/count
`, map[string]string{})
	var outputs []string
	for i := 0; i < 2; i++ {
		rec := newRecorder()
		out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir, Repo: "example/cached"}, rec)
		if err != nil || out.Result != events.Success {
			t.Fatalf("build %d: %v %+v", i, err, out)
		}
		outputs = append(outputs, strings.TrimSpace(rec.out("cached")))
	}
	if outputs[0] != "none" || outputs[1] != "1" {
		t.Errorf("first build saw %q, second %q; want none, then the first build's 1", outputs[0], outputs[1])
	}
	// Another repository does not see the cache.
	rec := newRecorder()
	if _, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir, Repo: "example/other"}, rec); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(rec.out("cached")); got != "none" {
		t.Errorf("another repository saw the cache: %q", got)
	}
}

func TestJobTimesOut(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, "id: slow\nimage: monkeyci/busybox:latest\ntimeout: 2\nscript: [\"sleep 120\"]\n", map[string]string{})
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, newRecorder())
	if err != nil {
		t.Fatal(err)
	}
	if j := jobResult(t, out, "slow"); j.Result != events.Error || !strings.Contains(j.Message, "timed out after 2s") {
		t.Errorf("slow: %+v, want an error saying it timed out after 2s", j)
	}
}

func TestMissingImageFailsTheJobSayingSo(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, "id: ghost\nimage: monkeyci/no-such-image:1\nscript: [\"true\"]\n", map[string]string{})
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, newRecorder())
	if err != nil {
		t.Fatal(err)
	}
	j := jobResult(t, out, "ghost")
	if j.Result != events.Error || !strings.Contains(j.Message, "monkeyci/no-such-image:1") || !strings.Contains(j.Message, "not present locally") {
		t.Errorf("ghost: %+v, want an error naming the image", j)
	}
}

// The workspace holds the working tree and .git, without what .gitignore
// names.
func TestWorkspaceLeavesOutGitignoredFiles(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, "id: ls\nimage: monkeyci/busybox:latest\nscript: [\"find . -type f | sort\"]\n", map[string]string{
		".gitignore": "*.log\nbuild/\n", "keep.txt": "k", "debug.log": "x", "build/out.bin": "x", "src/main.c": "int main;", ".git/HEAD": "ref",
	})
	rec := newRecorder()
	if out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec); err != nil || out.Result != events.Success {
		t.Fatalf("%v %+v", err, out)
	}
	got := rec.out("ls")
	for _, want := range []string{"./keep.txt", "./src/main.c", "./.gitignore", "./.monkeyci/build.yaml", "./.git/HEAD"} {
		if !strings.Contains(got, want) {
			t.Errorf("workspace lacks %s:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{"debug.log", "out.bin"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("workspace has %s:\n%s", unwanted, got)
		}
	}
}

// A job that fits the agent but not beside its own waiting script must fail
// at once too, not wait for capacity forever.
func TestJobThatFitsOnlyWithoutTheScriptFailsAtOnce(t *testing.T) {
	tests := []struct {
		name     string
		capacity agent.Resources
		pause    bool
		want     string
	}{
		{"memory", agent.Resources{MilliCPUs: 2000, Memory: 2 << 30}, true, "needs 2 GB of memory but the agent has 2 GB, of which the build's script keeps 1 GB"},
		{"cpu without pausing", agent.Resources{MilliCPUs: 1000, Memory: 8 << 30}, false, "needs 1 CPU but the agent has 1 CPU, of which the build's script keeps 1 CPU"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.capacity, tc.pause)
			dir := repo(t, "id: big\nimage: monkeyci/busybox:latest\nscript: [\"true\"]\n", map[string]string{})
			out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, newRecorder())
			if err != nil {
				t.Fatal(err)
			}
			if j := jobResult(t, out, "big"); j.Result != events.Error || !strings.Contains(j.Message, tc.want) {
				t.Errorf("big: %+v, want an error saying %q", j, tc.want)
			}
		})
	}
}

func TestMissingArtifactPathFailsTheJobSayingWhich(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, "id: forgetful\nimage: monkeyci/busybox:latest\nscript: [\"true\"]\nsave-artifacts: [{id: bin, path: nothere}]\n", map[string]string{})
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, newRecorder())
	if err != nil {
		t.Fatal(err)
	}
	want := `artifact "bin": /workspace/nothere does not exist after the job`
	if j := jobResult(t, out, "forgetful"); j.Result != events.Failure || j.Message != want {
		t.Errorf("forgetful: %+v, want a failure saying %q", j, want)
	}
}
