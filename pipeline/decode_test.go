package pipeline

import (
	"reflect"
	"testing"
	"time"
)

// base is a minimal valid job; tests add one key to it.
const base = "id: j\nimage: alpine\nscript: [true]\n"

// parseOne parses src and validates it, failing the test on any error.
func parseOne(t *testing.T, file, src string) Job {
	t.Helper()
	jobs, err := Parse(file, []byte(src))
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	p, err := Validate(jobs)
	if err != nil {
		t.Fatalf("Validate(%q): %v", src, err)
	}
	if len(p.Jobs) != 1 {
		t.Fatalf("got %d jobs, want 1", len(p.Jobs))
	}
	return p.Jobs[0]
}

func TestKeys(t *testing.T) {
	tests := []struct {
		name string
		file string
		src  string
		get  func(Job) any
		want any
	}{
		{"id", "b.yaml", "id: build\nimage: a\nscript: [x]", func(j Job) any { return j.ID }, "build"},
		{"numeric id", "b.yaml", "id: 42\nimage: a\nscript: [x]", func(j Job) any { return j.ID }, "42"},
		{"image", "b.yaml", base, func(j Job) any { return j.Image }, "alpine"},
		{"script list", "b.yaml", "image: a\nscript: [make, make test]", func(j Job) any { return j.Script }, []string{"make", "make test"}},
		{"script string", "b.yaml", "image: a\nscript: make test", func(j Job) any { return j.Script }, []string{"make test"}},
		{"script bool line", "b.yaml", "image: a\nscript: [true]", func(j Job) any { return j.Script }, []string{"true"}},
		{"save-artifacts", "b.yaml", base + "save-artifacts: [{id: t, path: target/}]", func(j Job) any { return j.SaveArtifacts }, []Artifact{{ID: "t", Path: "target/"}}},
		{"one artifact map", "b.yaml", base + "save-artifacts: {id: t, path: target/}", func(j Job) any { return j.SaveArtifacts }, []Artifact{{ID: "t", Path: "target/"}}},
		{"restore-artifacts", "b.yaml", base + "restore-artifacts:\n  - id: t\n    path: out", func(j Job) any { return j.RestoreArtifacts }, []Artifact{{ID: "t", Path: "out"}}},
		{"caches", "b.yaml", base + "caches: [{id: m2, path: .m2}]", func(j Job) any { return j.Caches }, []Artifact{{ID: "m2", Path: ".m2"}}},
		{"caches keyed by files", "b.yaml", base + "caches: [{id: deps, path: .gocache, key-files: [go.sum, tools/go.sum]}]", func(j Job) any { return j.Caches }, []Artifact{{ID: "deps", Path: ".gocache", KeyFiles: []string{"go.sum", "tools/go.sum"}}}},
		{"caches keyed by files, camelCase", "b.json", `{"id":"x","image":"i","script":["s"],"caches":[{"id":"deps","path":"d","keyFiles":["package-lock.json"]}]}`, func(j Job) any { return j.Caches }, []Artifact{{ID: "deps", Path: "d", KeyFiles: []string{"package-lock.json"}}}},
		{"caches keyed by files, EDN", "b.edn", `{:id "x" :image "i" :script ["s"] :caches [{:id "deps" :path "d" :key-files ["deps.edn"]}]}`, func(j Job) any { return j.Caches }, []Artifact{{ID: "deps", Path: "d", KeyFiles: []string{"deps.edn"}}}},
		{"size", "b.yaml", base + "size: 3", func(j Job) any { return [2]int64{int64(j.CPUs), j.Memory} }, [2]int64{3, 6 << 30}},
		{"size with cpus", "b.yaml", base + "size: 3\ncpus: 1", func(j Job) any { return [2]int64{int64(j.CPUs), j.Memory} }, [2]int64{1, 6 << 30}},
		{"size with memory", "b.yaml", base + "size: 3\nmemory: 1", func(j Job) any { return [2]int64{int64(j.CPUs), j.Memory} }, [2]int64{3, 1 << 30}},
		{"cpus", "b.yaml", base + "cpus: 4", func(j Job) any { return [2]int64{int64(j.CPUs), j.Memory} }, [2]int64{4, 2 << 30}},
		{"cpus 2.0", "b.json", `{"image":"a","script":"x","cpus":2.0}`, func(j Job) any { return j.CPUs }, 2.0},
		{"cpus a quarter", "b.yaml", base + "cpus: 0.25", func(j Job) any { return j.CPUs }, 0.25},
		{"cpus a quarter, json", "b.json", `{"image":"a","script":"x","cpus":0.25}`, func(j Job) any { return j.CPUs }, 0.25},
		{"cpus a quarter, edn", "b.edn", `{:image "a" :script "x" :cpus 0.25}`, func(j Job) any { return j.CPUs }, 0.25},
		{"cpus a thousandth", "b.yaml", base + "cpus: 0.001", func(j Job) any { return j.CPUs }, 0.001},
		{"pids", "b.yaml", base + "pids: 256", func(j Job) any { return j.Pids }, int64(256)},
		{"pids edn", "b.edn", `{:image "a" :script "x" :pids 64}`, func(j Job) any { return j.Pids }, int64(64)},
		{"pids json 2.0", "b.json", `{"image":"a","script":"x","pids":2.0}`, func(j Job) any { return j.Pids }, int64(2)},
		{"pids unset", "b.yaml", base + "cpus: 1", func(j Job) any { return j.Pids }, int64(0)},
		{"memory GB number", "b.yaml", base + "memory: 4", func(j Job) any { return j.Memory }, int64(4 << 30)},
		{"memory fraction", "b.yaml", base + "memory: 0.5", func(j Job) any { return j.Memory }, int64(512 << 20)},
		{"memory 512m", "b.yaml", base + "memory: 512m", func(j Job) any { return j.Memory }, int64(512 << 20)},
		{"memory 2g", "b.yaml", base + "memory: 2g", func(j Job) any { return j.Memory }, int64(2 << 30)},
		{"memory 1.5GB", "b.yaml", base + "memory: 1.5GB", func(j Job) any { return j.Memory }, int64(3 << 29)},
		{"memory 100 MiB", "b.yaml", base + "memory: 100 MiB", func(j Job) any { return j.Memory }, int64(100 << 20)},
		{"memory string number", "b.yaml", base + "memory: \"3\"", func(j Job) any { return j.Memory }, int64(3 << 30)},
		{"env", "b.yaml", base + "env: {A: x, N: 1.50, B: true, E: ''}", func(j Job) any { return j.Env }, map[string]string{"A": "x", "N": "1.50", "B": "true", "E": ""}},
		{"env edn keywords", "b.edn", `{:image "a" :script ["x"] :env {:A "x" "B" 2}}`, func(j Job) any { return j.Env }, map[string]string{"A": "x", "B": "2"}},
		{"labels", "b.yaml", base + "labels: {team: ci}", func(j Job) any { return j.Labels }, map[string]string{"team": "ci"}},
		{"yaml date is text", "b.yaml", base + "labels: {since: 2024-01-02}", func(j Job) any { return j.Labels["since"] }, "2024-01-02"},
		{"work-dir", "b.yaml", base + "work-dir: sub/dir", func(j Job) any { return j.WorkDir }, "sub/dir"},
		{"timeout seconds", "b.yaml", base + "timeout: 90", func(j Job) any { return j.Timeout }, 90 * time.Second},
		{"timeout duration", "b.yaml", base + "timeout: 1h30m", func(j Job) any { return j.Timeout }, 90 * time.Minute},
		{"timeout seconds string", "b.yaml", base + "timeout: \"30\"", func(j Job) any { return j.Timeout }, 30 * time.Second},
		{"timeout max", "b.yaml", base + "timeout: 6h", func(j Job) any { return j.Timeout }, 6 * time.Hour},
		{"shell", "b.yaml", base + "shell: bash", func(j Job) any { return j.Shell }, "bash"},
		{"entrypoint", "b.yaml", base + "entrypoint: [/bin/sh, -c]", func(j Job) any { return j.Entrypoint }, []string{"/bin/sh", "-c"}},
		{"cmd string", "b.yaml", "image: a\ncmd: run", func(j Job) any { return j.Cmd }, []string{"run"}},
		{"entrypoint only", "b.yaml", "image: a\nentrypoint: [run]", func(j Job) any { return j.Entrypoint }, []string{"run"}},
		{"blocked", "b.yaml", base + "blocked: true", func(j Job) any { return j.Blocked }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := parseOne(t, tt.file, tt.src)
			if got := tt.get(j); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDependencies(t *testing.T) {
	for _, src := range []string{
		"- {id: a, image: i, script: [x]}\n- {id: b, image: i, script: [x], dependencies: [a]}",
		"- {id: a, image: i, script: [x]}\n- {id: b, image: i, script: [x], dependencies: a}",
	} {
		jobs, err := Parse("b.yaml", []byte(src))
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if got := jobs[1].Dependencies; !reflect.DeepEqual(got, []string{"a"}) {
			t.Errorf("%q: dependencies %v", src, got)
		}
	}
}

func TestDefaults(t *testing.T) {
	j := parseOne(t, "b.yaml", "image: a\nscript: [x]")
	want := Job{ID: "job-1", Image: "a", Script: []string{"x"}, CPUs: 1, Memory: 2 << 30,
		Timeout: 20 * time.Minute, Shell: "sh"}
	j.Source, j.Pos = Position{}, nil
	if !reflect.DeepEqual(j, want) {
		t.Errorf("got %+v\nwant %+v", j, want)
	}
}

func TestDefaultIDsCountAcrossTheBuild(t *testing.T) {
	a, _ := Parse("a.yaml", []byte("- {image: a, script: [x]}\n- {id: named, image: a, script: [x]}"))
	b, _ := Parse("b.edn", []byte(`{:image "a" :script ["x"]}`))
	p, err := Validate(append(a, b...))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, j := range p.Jobs {
		ids = append(ids, j.ID)
	}
	if want := []string{"job-1", "named", "job-3"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
}

func TestCamelCase(t *testing.T) {
	camel := parseOne(t, "b.json", `{"image":"a","script":["x"],"saveArtifacts":[{"id":"t","path":"p"}],`+
		`"restoreArtifacts":[{"id":"u","path":"q"}],"workDir":"w"}`)
	kebab := parseOne(t, "b.json", `{"image":"a","script":["x"],"save-artifacts":[{"id":"t","path":"p"}],`+
		`"restore-artifacts":[{"id":"u","path":"q"}],"work-dir":"w"}`)
	camel.Pos, kebab.Pos = nil, nil
	if !reflect.DeepEqual(camel, kebab) {
		t.Errorf("camelCase %+v\nkebab-case %+v", camel, kebab)
	}
	for in, want := range map[string]string{"saveArtifacts": "save-artifacts", "workDir": "work-dir",
		"ID": "id", "CPUs": "cpus", "restoreArtifacts": "restore-artifacts", "save-artifacts": "save-artifacts"} {
		if got := canonKey(in); got != want {
			t.Errorf("canonKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestYAMLMergeKeys(t *testing.T) {
	src := "- &base {id: a, image: alpine, script: [x], cpus: 2}\n- <<: *base\n  id: b\n  cpus: 3\n"
	jobs, err := Parse("b.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if jobs[1].ID != "b" || jobs[1].Image != "alpine" || jobs[1].CPUs != 3 {
		t.Errorf("merged job %+v", jobs[1])
	}
}

func TestEDNForms(t *testing.T) {
	src := "; comment\n#_ {:ignored true}\n{:id \"a\", :image \"i\" :script (\"x\") :dependencies #{}}\n" +
		"[{\"id\" \"b\" :image \"i\" :cmd [\"y\"] :blocked false}]"
	jobs, err := Parse("b.edn", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].ID != "a" || jobs[1].ID != "b" || jobs[0].Source.Line != 3 {
		t.Errorf("jobs %+v", jobs)
	}
}

func TestSizeResources(t *testing.T) {
	for n := 1; n <= 8; n++ {
		cpus, mem := sizeResources(n)
		if cpus != float64(n) || mem != int64(n)*2<<30 {
			t.Errorf("size %d: %g cpus, %d bytes", n, cpus, mem)
		}
	}
}

func TestParseMemory(t *testing.T) {
	for in, want := range map[string]int64{
		"2": 2 << 30, "512m": 512 << 20, "512M": 512 << 20, "2g": 2 << 30, "1.5GB": 3 << 29,
		"64Mi": 64 << 20, "1t": 1 << 40, "7000000b": 7000000, "8192k": 8 << 20, " 3 GiB ": 3 << 30,
	} {
		got, err := ParseMemory(in)
		if err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "12x", "1.2.3g", "-1g", "1k", "5t", "g"} {
		if _, err := ParseMemory(in); err == nil {
			t.Errorf("ParseMemory(%q): no error", in)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"10m": 10 * time.Minute, "90s": 90 * time.Second, "60": time.Minute, "6h": 6 * time.Hour} {
		got, err := parseTimeout(in)
		if err != nil || got != want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-1m", "0", "6h1s", "1e100", "NaN"} {
		if _, err := parseTimeout(in); err == nil {
			t.Errorf("parseTimeout(%q): no error", in)
		}
	}
}
