package agent_test

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
)

// countingCache is a job that prints the count its cache holds ("none"
// when nothing was restored) and saves it plus one.
const countingCache = `
id: cached
image: monkeyci/busybox:latest
caches: [{id: deps, path: .deps}]
script:
  - mkdir -p .deps && cat .deps/count 2>/dev/null || echo none
  - echo "$(( $(cat .deps/count 2>/dev/null || echo 0) + 1 ))" > .deps/count
`

// TestCacheScopes: a build writes only its own scope and reads its
// fallback only while its own scope has no such cache; job/start says
// which scope each cache is saved to and came from.
func TestCacheScopes(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := repo(t, countingCache, map[string]string{})
	run := func(scope agent.CacheScope) (string, events.Cache) {
		t.Helper()
		rec := newRecorder()
		out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir, Repo: "example/scoped", Cache: scope}, rec)
		if err != nil || out.Result != events.Success {
			t.Fatalf("%+v: %v %+v", scope, err, out)
		}
		start := rec.waitFor(t, "job/start", func(e events.Event) bool { return e.Type == events.JobStart })
		if len(start.Caches) != 1 {
			t.Fatalf("job/start caches %+v, want one", start.Caches)
		}
		return strings.TrimSpace(rec.out("cached")), start.Caches[0]
	}
	main := agent.CacheScope{Scope: "branch:main"}
	feature := agent.CacheScope{Scope: "branch:feature", Fallback: "branch:main"}
	steps := []struct {
		name  string
		scope agent.CacheScope
		saw   string
		from  string
	}{
		{"main's first build", main, "none", ""},
		{"main's second build reads its own", main, "1", "branch:main"},
		{"feature's first build reads main's", feature, "2", "branch:main"},
		{"feature's second reads its own", feature, "3", "branch:feature"},
		{"main never sees feature's", main, "2", "branch:main"},
		{"a pull request has only its own", agent.CacheScope{Scope: "pr:7"}, "none", ""},
		{"and writes it", agent.CacheScope{Scope: "pr:7"}, "1", "pr:7"},
		{"a tag likewise", agent.CacheScope{Scope: "tag:v1"}, "none", ""},
		{"main still untouched", main, "3", "branch:main"},
	}
	for _, s := range steps {
		saw, c := run(s.scope)
		if saw != s.saw || c.ID != "deps" || c.Scope != s.scope.Scope || c.From != s.from {
			t.Errorf("%s: saw %q, event %+v; want %q, scope %s from %q", s.name, saw, c, s.saw, s.scope.Scope, s.from)
		}
	}
}

// TestHostileCacheChangesNothingOutsideItsPath: whatever a feature
// build puts in a cache, a main build's job sees no file changed outside
// its own declared cache path. The feature job tries symlinks out of its
// path; an archive tampered with on disk (absolute names, "..", writing
// through its own symlink, a hard link to /etc/passwd) is refused whole
// with one line naming the entry, in any scope.
func TestHostileCacheChangesNothingOutsideItsPath(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	const repoKey = "example/hostile"
	feature := agent.CacheScope{Scope: "branch:feature", Fallback: "branch:main"}
	main := agent.CacheScope{Scope: "branch:main"}

	// The feature build declares /usr/local/bin as its cache: refused.
	bad := repo(t, "id: evil\nimage: monkeyci/busybox:latest\ncaches: [{id: deps, path: /usr/local/bin}]\nscript: [\"true\"]\n", map[string]string{})
	out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: bad, Repo: repoKey, Cache: feature}, newRecorder())
	if err == nil && out.Result == events.Success {
		t.Fatalf("a cache at /usr/local/bin was accepted: %+v", out)
	}

	// It saves symlinks to outside places in its own cache path.
	evil := repo(t, `
id: cached
image: monkeyci/busybox:latest
caches: [{id: deps, path: .deps}]
script:
  - mkdir -p .deps && ln -s /usr/local/bin .deps/bin && ln -s /etc .deps/etc && ln -s .. .deps/up
`, map[string]string{})
	if out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: evil, Repo: repoKey, Cache: feature}, newRecorder()); err != nil || out.Result != events.Success {
		t.Fatalf("feature build: %v %+v", err, out)
	}
	if _, err := os.Stat(agent.CacheFile(f.caches, repoKey, feature.Scope, "deps")); err != nil {
		t.Fatalf("the feature build saved no cache: %v", err)
	}

	// A main job with the same cache id sees none of it, and the files
	// it looks at are the image's.
	look := repo(t, `
id: cached
image: monkeyci/busybox:latest
caches: [{id: deps, path: .deps}]
script:
  - ls -A .deps 2>/dev/null | wc -l
  - ls -A /usr/local/bin 2>/dev/null | wc -l
  - md5sum /etc/passwd /bin/sh | cut -d' ' -f1
`, map[string]string{})
	clean := newRecorder()
	if out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: look, Repo: "example/clean"}, clean); err != nil || out.Result != events.Success {
		t.Fatalf("clean build: %v %+v", err, out)
	}
	rec := newRecorder()
	if out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: look, Repo: repoKey, Cache: main}, rec); err != nil || out.Result != events.Success {
		t.Fatalf("main build: %v %+v", err, out)
	}
	if got, want := rec.out("cached"), clean.out("cached"); got != want {
		t.Errorf("main's job saw\n%s\nwant what a repository without caches sees\n%s", got, want)
	}

	// Archives tampered with on disk, in main's own scope: each is refused
	// whole, the job fails naming the entry, and nothing of it lands.
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		refused string
	}{
		{"absolute", []tarEntry{{name: "ok", body: "x"}, {name: "/usr/local/bin/evil", body: "x"}}, "/usr/local/bin/evil"},
		{"dot dot", []tarEntry{{name: "../../usr/local/bin/evil", body: "x"}}, "../../usr/local/bin/evil"},
		{"through its symlink", []tarEntry{{name: "bin", link: "/usr/local/bin", typ: tar.TypeSymlink}, {name: "bin/evil", body: "x"}}, "bin/evil"},
		{"hard link out", []tarEntry{{name: "passwd", link: "/etc/passwd", typ: tar.TypeLink}}, "passwd"},
		{"device", []tarEntry{{name: "null", typ: tar.TypeChar}}, "null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeTar(t, agent.CacheFile(f.caches, repoKey, main.Scope, "deps"), tc.entries)
			rec := newRecorder()
			out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: look, Repo: repoKey, Cache: main}, rec)
			if err != nil {
				t.Fatal(err)
			}
			j := jobResult(t, out, "cached")
			if j.Result != events.Error || !strings.Contains(j.Message, `refused archive entry "`+tc.refused+`"`) || strings.Contains(j.Message, "\n") {
				t.Errorf("job %+v, want an error of one line naming entry %q", j, tc.refused)
			}
			if rec.out("cached") != "" {
				t.Errorf("the job ran: %q", rec.out("cached"))
			}
		})
	}
}

type tarEntry struct {
	name, link, body string
	typ              byte
}

// writeTar writes a cache archive as it lies on the agent's disk.
func writeTar(t *testing.T, file string, entries []tarEntry) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	tw := tar.NewWriter(fh)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Mode: 0o755}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// A build script's job with a cache outside its work dir is refused when
// the script starts it, with a line naming the path, and the script goes on.
func TestScriptJobWithAnArchivePathOutsideItsWorkDirIsRefused(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	dir := scriptRepo(t, map[string]string{
		".monkeyci/script.yaml": inBusybox,
		".monkeyci/build.sh": "monkeyci job run evil --image " + busybox + " --cache deps:/usr/local/bin -- true\necho \"evil exit=$?\"\n" +
			"monkeyci job run up --image " + busybox + " --restore-artifact x:../.. -- true\necho \"up exit=$?\"\n",
	})
	rec := newRecorder()
	if _, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir}, rec); err != nil {
		t.Fatal(err)
	}
	if got := rec.out(""); !strings.Contains(got, "evil exit=") || strings.Contains(got, "evil exit=0") || !strings.Contains(got, "up exit=") || strings.Contains(got, "up exit=0") {
		t.Errorf("script output %q, want both jobs refused", got)
	}
	stderr := rec.errOut("")
	for _, want := range []string{`caches[0]: path "/usr/local/bin" is absolute`, `restore-artifacts[0]: path "../.." leaves the work dir`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the script's stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// A cache keyed by files is a new cache when they change, and the old one
// is back when they are as they were; the key is read before the job runs
// (a job that changes its lock file saves under the key it started with).
func TestCacheKeyedByFiles(t *testing.T) {
	f := newFixture(t, twoCPUs, true)
	build := `
id: cached
image: monkeyci/busybox:latest
caches: [{id: deps, path: .deps, key-files: [lock.txt, missing.txt]}]
script:
  - mkdir -p .deps && cat .deps/count 2>/dev/null || echo none
  - echo "$(( $(cat .deps/count 2>/dev/null || echo 0) + 1 ))" > .deps/count
  - echo changed by the job >> lock.txt
`
	run := func(lock string) (string, events.Cache) {
		t.Helper()
		dir := repo(t, build, map[string]string{"lock.txt": lock})
		rec := newRecorder()
		out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir, Repo: "example/keyed"}, rec)
		if err != nil || out.Result != events.Success {
			t.Fatalf("lock %q: %v %+v", lock, err, out)
		}
		start := rec.waitFor(t, "job/start", func(e events.Event) bool { return e.Type == events.JobStart })
		return strings.TrimSpace(rec.out("cached")), start.Caches[0]
	}
	var keys []string
	for i, step := range []struct{ lock, saw string }{{"v1", "none"}, {"v1", "1"}, {"v2", "none"}, {"v1", "2"}, {"v2", "1"}} {
		saw, c := run(step.lock)
		if saw != step.saw || len(c.Key) != 64 {
			t.Errorf("build %d with lock %s: saw %q (key %q), want %q", i+1, step.lock, saw, c.Key, step.saw)
		}
		keys = append(keys, c.Key)
	}
	if keys[0] != keys[1] || keys[0] == keys[2] || keys[0] != keys[3] {
		t.Errorf("keys %v: one per content of the lock file", keys)
	}
}

// A cache larger than the agent's whole tier is not kept there, and the
// agent's log says why the next build finds none.
func TestACacheLargerThanTheTierIsSaidSo(t *testing.T) {
	logs := &syncbuf.Buffer{}
	f := newFixtureWith(t, twoCPUs, true, func(cfg *agent.Config) {
		cfg.CacheSize = 1 // every cache is larger
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: logs})
	})
	dir := repo(t, countingCache, map[string]string{})
	for _, want := range []string{"none", "none"} {
		rec := newRecorder()
		out, err := f.runner.Run(context.Background(), agent.BuildSpec{Source: dir, Repo: "example/large", Cache: agent.CacheScope{Scope: "branch:main"}}, rec)
		if err != nil || out.Result != events.Success {
			t.Fatalf("%v %+v", err, out)
		}
		if got := strings.TrimSpace(rec.out("cached")); got != want {
			t.Errorf("the job saw %q, want %q: the tier keeps no cache larger than itself", got, want)
		}
	}
	if !strings.Contains(logs.String(), "larger than this agent's --cache-size") {
		t.Errorf("the log does not say the cache was too large:\n%s", logs.String())
	}
}
