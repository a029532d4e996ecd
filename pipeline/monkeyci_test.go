package pipeline

import (
	"reflect"
	"strings"
	"testing"
)

// TestMonkeyCIForms: every declarative form of MonkeyCI's job
// specification (spec/job/common.clj and v1.clj) reads the same in YAML,
// JSON and EDN, kebab-case and camelCase.
func TestMonkeyCIForms(t *testing.T) {
	tests := []struct {
		name            string
		yaml, json, edn string
		want            Job
	}{
		{"only id and image: the image's own command",
			"id: hello\nimage: monkeyci/hello",
			`{"id": "hello", "image": "monkeyci/hello"}`,
			`{:id "hello" :image "monkeyci/hello"}`,
			Job{ID: "hello", Image: "monkeyci/hello"}},
		{"type container",
			"id: x\ntype: container\nimage: i\nscript: [true]",
			`{"id": "x", "type": "container", "image": "i", "script": ["true"]}`,
			`{:id "x" :type :container :image "i" :script ["true"]}`,
			Job{ID: "x", Image: "i", Script: []string{"true"}}},
		{"container/image, v1's name of the image",
			"id: x\ncontainer/image: i",
			`{"id": "x", "container/image": "i"}`,
			`{:id "x" :container/image "i"}`,
			Job{ID: "x", Image: "i"}},
		{"arch",
			"id: x\nimage: i\narch: arm",
			`{"id": "x", "image": "i", "arch": "arm"}`,
			`{:id "x" :image "i" :arch :arm}`,
			Job{ID: "x", Image: "i", Arch: ArchARM}},
		{"expose",
			"id: db\nimage: i\nexpose: [5432, 8080]",
			`{"id": "db", "image": "i", "expose": [5432, 8080]}`,
			`{:id "db" :image "i" :expose [5432 8080]}`,
			Job{ID: "db", Image: "i", Expose: []int{5432, 8080}}},
		{"credit-multiplier, camelCase too",
			"id: x\nimage: i\ncreditMultiplier: 3",
			`{"id": "x", "image": "i", "credit-multiplier": 3}`,
			`{:id "x" :image "i" :creditMultiplier 3}`,
			Job{ID: "x", Image: "i", CreditMultiplier: 3}},
		{"everything of v1 at once",
			"id: x\ntype: container\nimage: i\nscript: [a]\ncpus: 2\nmemory: 4\nsize: 1\narch: amd\nenv: {A: b}\n" +
				"blocked: true\ndependencies: []\ncaches: [{id: c, path: p}]\nsaveArtifacts: [{id: s, path: q}]\ncredit-multiplier: 0",
			`{"id": "x", "type": "container", "image": "i", "script": ["a"], "cpus": 2, "memory": 4, "size": 1, "arch": "amd",` +
				`"env": {"A": "b"}, "blocked": true, "dependencies": [], "caches": [{"id": "c", "path": "p"}], "saveArtifacts": [{"id": "s", "path": "q"}], "credit-multiplier": 0}`,
			`{:id "x" :type :container :image "i" :script ["a"] :cpus 2 :memory 4 :size 1 :arch :amd :env {"A" "b"}` +
				` :blocked true :dependencies [] :caches [{:id "c" :path "p"}] :save-artifacts [{:id "s" :path "q"}] :credit-multiplier 0}`,
			Job{ID: "x", Image: "i", Script: []string{"a"}, CPUs: 2, Memory: 4 << 30, Arch: ArchAMD, Env: map[string]string{"A": "b"},
				Blocked: true, Caches: []Artifact{{ID: "c", Path: "p"}}, SaveArtifacts: []Artifact{{ID: "s", Path: "q"}}}},
	}
	for _, tt := range tests {
		for _, f := range []struct{ file, src string }{{"b.yaml", tt.yaml}, {"b.json", tt.json}, {"b.edn", tt.edn}} {
			t.Run(tt.name+"/"+f.file, func(t *testing.T) {
				got := parseOne(t, f.file, f.src)
				want := tt.want
				applyDefaults(&want)
				got.Source, got.Pos = Position{}, nil
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got  %+v\nwant %+v", got, want)
				}
			})
		}
	}
}

// TestMonkeyCIFormsRefused: what MonkeyCI's forms do not allow is refused
// with file:line:col and what to do.
func TestMonkeyCIFormsRefused(t *testing.T) {
	tests := []struct{ name, file, src, want string }{
		{"action in a build file", "b.yaml", "id: x\ntype: action\nimage: i",
			`b.yaml:2:7: type: action jobs run code, so they need a build script (.monkeyci/build, see docs/job-api.md); a build file holds container jobs`},
		{"action as an EDN keyword", "b.edn", `{:id "x" :type :action}`,
			`b.edn:1:16: type: action jobs run code`},
		{"unknown type", "b.json", `{"id": "x", "type": "vm", "image": "i"}`,
			`b.json:1:21: type: unknown job type "vm", expected "container"`},
		{"image twice", "b.yaml", "id: x\nimage: i\ncontainer/image: j",
			`b.yaml:3:18: container/image: the image is given twice (as "image" too): keep one`},
		{"image twice, v1 name first", "b.edn", `{:id "x" :container/image "i" :image "j"}`,
			`b.edn:1:38: image: the image is given twice (as "container/image" too): keep one`},
		{"arch amd64", "b.yaml", "id: x\nimage: i\narch: amd64",
			`b.yaml:3:7: arch: "amd64" is called "amd" here, expected "amd" or "arm"`},
		{"arch unknown", "b.edn", `{:id "x" :image "i" :arch :riscv}`,
			`b.edn:1:27: arch: unknown architecture "riscv", expected "amd" or "arm"`},
		{"port out of range", "b.yaml", "id: x\nimage: i\nexpose: [80, 70000]",
			`b.yaml:3:14: expose[1]: port 70000 is out of range, expected 1 to 65535`},
		{"port twice", "b.json", `{"id": "x", "image": "i", "expose": [80, 80]}`,
			`b.json:1:42: expose[1]: port 80 is listed twice`},
		{"port a string", "b.yaml", "id: x\nimage: i\nexpose: [http]",
			`b.yaml:3:10: expose[0]: expected a port number, got a string`},
		{"credit multiplier too large", "b.yaml", "id: x\nimage: i\ncredit-multiplier: 100",
			`b.yaml:3:20: credit-multiplier: 100 is out of range, expected a whole number from 0 to 99`},
		{"a key MonkeyCI does not know", "b.yaml", "id: x\nimage: i\nports: [80]",
			`b.yaml:3:1: unknown key "ports" (did you mean "expose"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(tt.file, tt.src)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestJobsFromCodeAreCheckedToo: a build script's job is held to the same
// arch, expose and credit-multiplier rules.
func TestJobsFromCodeAreCheckedToo(t *testing.T) {
	for _, j := range []Job{
		{ID: "a", Image: "i", Arch: "riscv"},
		{ID: "a", Image: "i", Expose: []int{0}},
		{ID: "a", Image: "i", Expose: []int{80, 80}},
		{ID: "a", Image: "i", CreditMultiplier: 100},
	} {
		if _, err := PrepareJob(j); err == nil {
			t.Errorf("PrepareJob(%+v) took it", j)
		}
	}
	if _, err := PrepareJob(Job{ID: "a", Image: "i", Expose: []int{80, 443}, Arch: ArchARM}); err != nil {
		t.Errorf("PrepareJob: %v", err)
	}
}
