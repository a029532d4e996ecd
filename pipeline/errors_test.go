package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// load parses and validates one file, as Load does.
func load(file, src string) (*Plan, error) {
	jobs, err := Parse(file, []byte(src))
	if err != nil {
		return nil, err
	}
	return Validate(jobs)
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, file, src, want string
	}{
		{"unknown key", "b.yaml", base + "scirpt: [x]",
			`b.yaml:4:1: unknown key "scirpt" (did you mean "script"?)`},
		{"unknown key hint", "b.yaml", base + "needs: [a]",
			`b.yaml:4:1: unknown key "needs" (did you mean "dependencies"?)`},
		{"unknown key far", "b.yaml", base + "colour: red",
			`b.yaml:4:1: unknown key "colour"`},
		{"key-files of an artifact", "b.yaml", base + "save-artifacts: [{id: a, path: out, key-files: [go.sum]}]",
			`b.yaml:4:37: save-artifacts[0]: key-files keys a cache, not an artifact`},
		{"key file outside the work dir", "b.yaml", base + "caches: [{id: d, path: .d, key-files: [/etc/passwd]}]",
			`b.yaml:4:10: caches[0]: key-files: path "/etc/passwd" is absolute, expected a path relative to the work dir like "passwd"`},
		{"key-files a map", "b.yaml", base + "caches: [{id: d, path: .d, key-files: {a: b}}]",
			`b.yaml:4:39: caches[0].key-files: expected a list of strings, got a map`},
		{"jobs key", "b.yaml", "jobs: []",
			`b.yaml:1:1: unknown key "jobs": a build file holds one job (a map) or a list of jobs`},
		{"duplicate key camelCase", "b.json", `{"image":"a","script":["x"],"workDir":"a","work-dir":"b"}`,
			`b.json:1:43: duplicate key "work-dir" (first at 1:29)`},
		{"script is a map", "b.yaml", "image: a\nscript: {a: 1}",
			`b.yaml:2:9: script: expected a list of strings, got a map`},
		{"script line is a map", "b.yaml", "image: a\nscript:\n  - echo a: b",
			`b.yaml:3:5: script[0]: expected a string, got a map (in YAML, quote a line that contains ": ")`},
		{"image is a list", "b.json", `{"image":["a"],"script":"x"}`,
			`b.json:1:10: image: expected a string, got a list`},
		{"image null", "b.yaml", "image:\nscript: x",
			`b.yaml:1:7: image: expected a string, got null`},
		{"missing image", "b.yaml", "id: x\nscript: [a]",
			`b.yaml:1:1: job "x" has no image, expected an "image" key`},
		{"empty image", "b.yaml", "image: ''\nscript: [a]",
			`b.yaml:1:8: image: must not be empty, expected an image name like "docker.io/alpine:latest"`},
		{"size 0", "b.yaml", base + "size: 0",
			`b.yaml:4:7: size: must be at least 1, got 0`},
		{"size fraction", "b.yaml", base + "size: 1.5",
			`b.yaml:4:7: size: expected a whole number, got 1.5`},
		{"size huge", "b.yaml", base + "size: 99999999999999999999",
			`b.yaml:4:7: size: 99999999999999999999 is too large, expected at most 1024`},
		{"size string", "b.yaml", base + "size: big",
			`b.yaml:4:7: size: expected a whole number, got a string`},
		{"cpus negative", "b.yaml", base + "cpus: -2",
			`b.yaml:4:7: cpus: must be above 0, got -2`},
		{"cpus zero", "b.yaml", base + "cpus: 0",
			`b.yaml:4:7: cpus: must be above 0, got 0`},
		{"cpus minus zero", "b.yaml", base + "cpus: -0.0",
			`b.yaml:4:7: cpus: must be above 0, got -0.0`},
		{"cpus tiny", "b.yaml", base + "cpus: 0.0001",
			`b.yaml:4:7: cpus: 0.0001 is too small, expected at least 0.001`},
		{"cpus huge", "b.json", `{"image":"a","script":"x","cpus":1e9}`,
			`b.json:1:34: cpus: 1e9 is too large, expected at most 1024`},
		{"cpus string", "b.yaml", base + "cpus: half",
			`b.yaml:4:7: cpus: expected a number of CPUs like 1 or 0.25, got a string`},
		{"pids zero", "b.yaml", base + "pids: 0",
			`b.yaml:4:7: pids: must be at least 1, got 0`},
		{"pids negative", "b.edn", `{:image "a" :script "x" :pids -5}`,
			`b.edn:1:31: pids: must be at least 1, got -5`},
		{"pids fraction", "b.yaml", base + "pids: 10.5",
			`b.yaml:4:7: pids: expected a whole number of processes, got 10.5`},
		{"pids huge", "b.yaml", base + "pids: 99999999999999999999",
			`b.yaml:4:7: pids: 99999999999999999999 is too large, expected at most 4194304`},
		{"pids string", "b.yaml", base + "pids: many",
			`b.yaml:4:7: pids: expected a whole number of processes, got a string`},
		{"pids misspelt", "b.yaml", base + "pidsLimit: 5",
			`b.yaml:4:1: unknown key "pidsLimit" (did you mean "pids"?)`},
		{"bad memory", "b.yaml", base + "memory: 12x",
			`b.yaml:4:9: memory: unknown unit "x" in "12x", expected a number of GB or a size like "512m", "2g" or "1.5GB"`},
		{"memory garbage", "b.yaml", base + "memory: lots",
			`b.yaml:4:9: memory: invalid size "lots", expected a number of GB or a size like "512m", "2g" or "1.5GB"`},
		{"memory tiny", "b.yaml", base + "memory: 1k",
			`b.yaml:4:9: memory: 1k is too small, expected at least 6m`},
		{"memory map", "b.yaml", base + "memory: {}",
			`b.yaml:4:9: memory: expected a number of GB or a size like "512m", "2g" or "1.5GB", got a map`},
		{"timeout too long", "b.edn", `{:image "a" :script "x" :timeout "7h"}`,
			`b.edn:1:34: timeout: 7h is above the maximum of 6h`},
		{"timeout seconds too long", "b.json", `{"image":"a","script":"x","timeout":86400}`,
			`b.json:1:37: timeout: 86400 is above the maximum of 6h`},
		{"timeout bad", "b.yaml", base + "timeout: soon",
			`b.yaml:4:10: timeout: invalid duration "soon", expected a duration like "10m" or "90s", or a number of seconds`},
		{"timeout zero", "b.yaml", base + "timeout: 0",
			`b.yaml:4:10: timeout: 0 is not positive, expected a duration like "10m"`},
		{"env list", "b.yaml", base + "env: [A=1]",
			`b.yaml:4:6: env: expected a map of names to values, got a list`},
		{"env value map", "b.yaml", base + "env: {A: {b: 1}}",
			`b.yaml:4:10: env.A: expected a string, number or bool, got a map`},
		{"env name with =", "b.json", `{"image":"a","script":"x","env":{"A=B":"1"}}`,
			`b.json:1:34: env: name "A=B" must not contain '=' or NUL`},
		{"blocked string", "b.yaml", base + "blocked: 'yes'",
			`b.yaml:4:10: blocked: expected true or false, got a string`},
		{"artifact missing path", "b.yaml", base + "save-artifacts: [{id: a}]",
			`b.yaml:4:18: save-artifacts[0]: missing "path", expected {id, path}`},
		{"artifact missing id", "b.edn", `{:image "a" :script "x" :restore-artifacts [{:path "p"}]}`,
			`b.edn:1:45: restore-artifacts[0]: missing "id", expected {id, path}`},
		{"artifact not a map", "b.yaml", base + "caches: [m2]",
			`b.yaml:4:10: caches[0]: expected a map with id and path, got a string`},
		{"artifact unknown key", "b.yaml", base + "caches: [{id: a, path: p, pth: q}]",
			`b.yaml:4:27: caches[0]: unknown key "pth" (did you mean "path"?)`},
		{"artifact empty path", "b.yaml", base + "caches: [{id: a, path: ''}]",
			`b.yaml:4:10: caches[0]: id and path must not be empty, expected {id, path}`},
		{"artifact bad id", "b.yaml", base + "caches: [{id: ../x, path: p}]",
			`b.yaml:4:10: caches[0]: invalid id "../x", use up to 128 letters, digits, '.', '_' and '-', starting with a letter or digit`},
		{"invalid job id", "b.yaml", "id: a b\nimage: x\nscript: y",
			`b.yaml:1:5: invalid id "a b", use up to 128 letters, digits, '.', '_' and '-', starting with a letter or digit`},
		{"duplicate id", "b.yaml", "- {id: a, image: i, script: [x]}\n- {id: a, image: i, script: [x]}",
			`b.yaml:2:8: duplicate job id "a", first declared at b.yaml:1:8`},
		{"duplicate default id", "b.yaml", "- {id: job-2, image: i, script: [x]}\n- {image: i, script: [x]}",
			`b.yaml:2:3: duplicate job id "job-2" (the default id of this job), first declared at b.yaml:1:8`},
		{"unknown dependency", "b.yaml", "- {id: build, image: i, script: [x]}\n- {id: b, image: i, script: [x], dependencies: [biuld]}",
			`b.yaml:2:49: job "b" depends on unknown job "biuld" (did you mean "build"?)`},
		{"dependency listed twice", "b.yaml", "- {id: a, image: i, script: [x]}\n- {id: b, image: i, script: [x], dependencies: [a, a]}",
			`b.yaml:2:52: dependencies[1]: "a" is listed twice`},
		{"cycle", "b.yaml", "- {id: a, image: i, script: [x], dependencies: [c]}\n- {id: b, image: i, script: [x], dependencies: [a]}\n- {id: c, image: i, script: [x], dependencies: [b]}",
			`b.yaml:1:49: dependency cycle: a -> c -> b -> a`},
		{"self cycle", "b.edn", `{:id "a" :image "i" :script ["x"] :dependencies ["a"]}`,
			`b.edn:1:50: dependency cycle: a -> a`},
		{"top level scalar", "b.yaml", "42",
			`b.yaml:1:1: expected a job (a map) or a list of jobs, got a number`},
		{"list of strings", "b.json", `["a"]`,
			`b.json:1:2: expected a job (a map), got a string`},
		{"empty list", "b.edn", `[]`,
			`b.edn:1:1: empty list of jobs, expected at least one job`},
		{"empty file", "b.json", " \n",
			`b.json:1:1: empty build file, expected a job (a map) or a list of jobs`},
		{"comments only", "b.yaml", "# nothing\n",
			`b.yaml:1:1: empty build file, expected a job (a map) or a list of jobs`},
		{"non-string key", "b.yaml", base + "1: x",
			`b.yaml:4:1: expected a key (a string or keyword), got a number`},
		{"edn symbol key", "b.edn", `{image "a"}`,
			`b.edn:1:2: expected a key (a string or keyword), got a symbol`},
		{"yaml syntax", "b.yaml", "- a\n- b\n  c: d\n",
			`b.yaml:3:3: invalid YAML: mapping values are not allowed in this context`},
		{"yaml parser error", "b.yaml", "a:\n  - b\n c: d\n",
			`b.yaml:3:2: invalid YAML: did not find expected key`},
		{"yaml control char", "b.yaml", "id: x\n  \x01",
			`b.yaml:2:3: invalid YAML: character '\x01' is not allowed, expected printable text`},
		{"yaml unknown anchor", "b.yaml", "image: *img\n",
			`b.yaml:1:8: invalid YAML: unknown anchor 'img' referenced`},
		{"json syntax", "b.json", "{\"image\": \"a\",\n  \"script\": [\"x\"],\n}",
			`b.json:3:1: invalid JSON: invalid character '}' looking for beginning of object key string`},
		{"json truncated", "b.json", "{\"image\": \"a\"",
			`b.json:1:14: invalid JSON: unexpected end of JSON input`},
		{"json two values", "b.json", "{} {}",
			`b.json:1:4: invalid JSON: invalid character '{' after top-level value`},
		{"edn syntax", "b.edn", "{:image \"a\"\n :script [1a]}",
			`b.edn:2:12: invalid EDN: invalid character 'a' - unexpected rune after legal integer`},
		{"edn syntax after tokens", "b.edn", "{:a 1 :b 2}\n[:c ::d]",
			`b.edn:2:6: invalid EDN: EDN does not support namespace-qualified keywords`},
		{"edn bad escape", "b.edn", `{:image "a\qb"}`,
			`b.edn:1:12: invalid EDN: invalid character 'q' in string escape code`},
		{"edn bad dispatch", "b.edn", `#1 {}`,
			`b.edn:1:1: invalid EDN: unexpected '1' after '#', expected a tag, #{ or #_`},
		{"edn big int", "b.edn", `{:cpus 99999999999999999999}`,
			`b.edn:1:8: invalid EDN value "99999999999999999999": edn: cannot unmarshal int 99999999999999999999 into Go value of type int64`},
		{"edn unclosed", "b.edn", "[{:image \"a\"}\n",
			`b.edn:1:1: invalid EDN: unclosed "[", expected ']'`},
		{"edn mismatched", "b.edn", "{:script [\"a\"}",
			`b.edn:1:14: invalid EDN: unexpected '}', expected ']' to close the "[" at 1:10`},
		{"edn odd map", "b.edn", "{:image \"a\" :script}",
			`b.edn:1:13: invalid EDN: map key without a value`},
		{"edn stray closer", "b.edn", "{:image \"a\" :script \"x\"}\n)",
			`b.edn:2:1: invalid EDN: unexpected ')', expected a map or a vector`},
		{"yaml tagged", "b.yaml", base + "shell: !!binary c2g=",
			`b.yaml:4:8: shell: expected a string, got a value tagged "!!binary"`},
		{"edn tagged", "b.edn", `{:image #inst "2020-01-01T00:00:00Z" :script "x"}`,
			`b.edn:1:9: image: expected a string, got a tagged value #inst`},
		{"edn keyword value", "b.edn", `{:image :alpine :script "x"}`,
			`b.edn:1:9: image: expected a string, got a keyword`},
		{"bom yaml", "b.yaml", "\ufeff{image: a, script: x, size: 0}",
			`b.yaml:1:29: size: must be at least 1, got 0`},
		{"bom json", "b.json", "\ufeff{\"image\": \"a\", \"script\": \"x\", \"size\": 0}",
			`b.json:1:39: size: must be at least 1, got 0`},
		{"bom edn", "b.edn", "\ufeff{:image \"a\" :script \"x\" :size 0}",
			`b.edn:1:31: size: must be at least 1, got 0`},
		{"invalid utf-8", "b.yaml", "id: \xff",
			`b.yaml:1:5: invalid UTF-8, expected UTF-8 text`},
		{"unsupported extension", "b.toml", "x",
			`b.toml: unsupported build file type ".toml", expected .yaml, .yml, .json or .edn`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(tt.file, tt.src)
			if err == nil {
				t.Fatalf("no error, want %s", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %s\nwant %s", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %T is not a *pipeline.Error", err)
			}
		})
	}
}

func TestSeveralErrorsSortedByPosition(t *testing.T) {
	src := "- {id: a, image: i, script: [x], size: 0}\n- {id: b, scirpt: [x], image: i}\n- {id: c, image: [i], script: x}\n"
	_, err := load("b.yaml", src)
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %T %v, want Errors", err, err)
	}
	want := strings.Join([]string{
		`b.yaml:1:40: size: must be at least 1, got 0`,
		`b.yaml:2:11: unknown key "scirpt" (did you mean "script"?)`,
		`b.yaml:3:18: image: expected a string, got a list`,
	}, "\n")
	if err.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", err, want)
	}
}

func TestManyErrorsAreCapped(t *testing.T) {
	var b strings.Builder
	for i := range 30 {
		fmt.Fprintf(&b, "- {id: j%d, image: i, script: [x], bad: 1}\n", i)
	}
	_, err := load("b.yaml", b.String())
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("got %T, want Errors", err)
	}
	if len(es) != maxErrors+1 || !strings.Contains(es[maxErrors].Msg, "10 more") {
		t.Errorf("got %d errors, last %q", len(es), es[len(es)-1].Msg)
	}
}

func TestValidateJobsFromCode(t *testing.T) {
	p, err := Validate([]Job{{ID: "a", Image: "i", Script: []string{"x"}}, {Image: "i", Cmd: []string{"y"}, Dependencies: []string{"a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if j := p.Jobs[1]; j.ID != "job-2" || j.CPUs != 1 || j.Memory != DefaultMemory || j.Timeout != DefaultTimeout {
		t.Errorf("defaults not filled: %+v", j)
	}
	_, err = Validate([]Job{{ID: "a", Script: []string{"x"}, CPUs: -1}})
	want := "job \"a\" has no image, expected an \"image\" key\ncpus: -1 is out of range, expected 0.001 to 1024"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestHostileInputs(t *testing.T) {
	laughs := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	for i, prev := 0, "a"; i < 9; i++ {
		name := string(rune('b' + i))
		laughs += name + ": &" + name + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = name
	}
	deep := 5000
	tests := []struct{ file, src, want string }{
		{"b.yaml", laughs, "too large or too deeply nested"},
		{"b.yaml", "- &a [*a]\n", ""},
		{"b.yaml", strings.Repeat("[", deep) + strings.Repeat("]", deep), "nested"},
		{"b.json", strings.Repeat("[", deep) + strings.Repeat("]", deep), "nested too deeply"},
		{"b.edn", strings.Repeat("[", deep) + strings.Repeat("]", deep), "nested too deeply"},
		{"b.edn", strings.Repeat("#_ ", deep) + "{}", "nested too deeply"},
		{"b.yaml", strings.Repeat("x", maxFileSize+1), "file is too large"},
	}
	for _, tt := range tests {
		_, err := load(tt.file, tt.src)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %.30q...: got %v, want %q", tt.file, tt.src, err, tt.want)
		}
	}
}
