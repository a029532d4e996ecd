package pipeline

import (
	"reflect"
	"strings"
	"testing"
)

func TestWhenInEveryFormat(t *testing.T) {
	want := &When{Branch: "main", Tag: "v*", Changed: []string{"docs/**", "*.md"}}
	tests := []struct{ name, file, src string }{
		{"yaml", "b.yaml", base + "when:\n  branch: main\n  tag: v*\n  changed: [docs/**, '*.md']"},
		{"yaml flow", "b.yaml", base + "when: {branch: main, tag: 'v*', changed: [docs/**, '*.md']}"},
		{"json", "b.json", `{"image":"alpine","script":["true"],"when":{"branch":"main","tag":"v*","changed":["docs/**","*.md"]}}`},
		{"edn keywords", "b.edn", `{:image "alpine" :script ["true"] :when {:branch "main" :tag "v*" :changed ["docs/**" "*.md"]}}`},
		{"edn strings", "b.edn", `{:image "alpine" :script ["true"] "when" {"branch" "main" "tag" "v*" "changed" ("docs/**" "*.md")}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := parseOne(t, tt.file, tt.src)
			if !reflect.DeepEqual(j.When, want) {
				t.Errorf("when = %+v, want %+v", j.When, want)
			}
		})
	}
	one := parseOne(t, "b.yaml", base+"when: {changed: src/}")
	if !reflect.DeepEqual(one.When, &When{Changed: []string{"src/"}}) {
		t.Errorf("one changed glob: %+v", one.When)
	}
	if j := parseOne(t, "b.yaml", base); j.When != nil {
		t.Errorf("no when: %+v", j.When)
	}
}

func TestWhenErrors(t *testing.T) {
	tests := []struct{ name, file, src, want string }{
		{"not a map", "b.yaml", base + "when: main",
			`b.yaml:4:7: when: expected a map with branch, tag or changed, got a string`},
		{"a list", "b.json", `{"image":"a","script":"x","when":["main"]}`,
			`b.json:1:34: when: expected a map with branch, tag or changed, got a list`},
		{"empty map", "b.edn", `{:image "a" :script "x" :when {}}`,
			`b.edn:1:31: when: expected at least one of branch, tag or changed, got an empty map`},
		{"unknown key, close", "b.yaml", base + "when: {brnach: main}",
			`b.yaml:4:8: when: unknown key "brnach" (did you mean "branch"?)`},
		{"unknown key, far", "b.edn", `{:image "a" :script "x" :when {:event "push"}}`,
			`b.edn:1:32: when: unknown key "event", expected branch, tag or changed`},
		{"duplicate key", "b.yaml", base + "when: {branch: a, branch: b}",
			`b.yaml:4:19: when: duplicate key "branch" (first at 4:8)`},
		{"branch a list", "b.yaml", base + "when: {branch: [a]}",
			`b.yaml:4:16: when.branch: expected a string, got a list`},
		{"branch empty", "b.json", `{"image":"a","script":"x","when":{"branch":""}}`,
			`b.json:1:44: when.branch: must not be empty, expected a glob like "main" or "release/*"`},
		{"tag bad glob", "b.yaml", base + "when: {tag: 'v[1'}",
			`b.yaml:4:13: when.tag: invalid pattern "v[1": syntax error in pattern, expected a glob like "v*" or "release-*"`},
		{"changed a map", "b.edn", `{:image "a" :script "x" :when {:changed {:a 1}}}`,
			`b.edn:1:41: when.changed: expected a list of strings, got a map`},
		{"changed empty", "b.yaml", base + "when: {changed: []}",
			`b.yaml:4:17: when.changed: expected at least one glob, like "docs/**"`},
		{"changed bad glob", "b.yaml", base + "when: {changed: [ok/**, 'src/[a']}",
			`b.yaml:4:25: when.changed[1]: invalid pattern "src/[a": syntax error in pattern, expected a glob like "docs/**" or "**/*.go"`},
		{"changed item a map", "b.json", `{"image":"a","script":"x","when":{"changed":[{"a":1}]}}`,
			`b.json:1:46: when.changed[0]: expected a string, got a map`},
		{"hint for if", "b.yaml", base + "if: {branch: main}",
			`b.yaml:4:1: unknown key "if" (did you mean "when"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(tt.file, tt.src)
			if err == nil || err.Error() != tt.want {
				t.Errorf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestWhenOfJobsBuiltInCode(t *testing.T) {
	j := Job{ID: "a", Image: "i", Script: []string{"x"}, When: &When{Changed: []string{"[", "ok"}}}
	_, err := Validate([]Job{j})
	if err == nil || !strings.Contains(err.Error(), `when.changed[0]: invalid pattern "["`) {
		t.Errorf("Validate: %v", err)
	}
	if _, err := PrepareJob(Job{ID: "a", Image: "i", Script: []string{"x"}, When: &When{Tag: "v*"}}); err != nil {
		t.Errorf("PrepareJob: %v", err)
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"main", "main", true},
		{"main", "mainline", false},
		{"release/*", "release/1.0", true},
		{"release/*", "release/1.0/hotfix", false},
		{"release/**", "release/1.0/hotfix", true},
		{"release/**", "release", true}, // ** matches no segment too
		{"feature-?", "feature-a", true},
		{"feature-?", "feature-ab", false},
		{"v[0-9]*", "v1.2.0", true},
		{"v[0-9]*", "vx", false},
		{"v[^0-9]*", "vx", true},
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{"*.md", "README.md", true},
		{"*.md", "docs/intro.md", false}, // anchored: * stays in one directory
		{"**/*.md", "docs/intro.md", true},
		{"**/*.md", "README.md", true},
		{"**/*.md", "a/b/c/d.md", true},
		{"**/*.md", "a/b/c/d.go", false},
		{"docs/**", "docs/a.md", true},
		{"docs/**", "docs/x/y/b.md", true},
		{"docs/**", "doc/a.md", false},
		{"docs/**", "src/docs/a.md", false},
		{"docs/", "docs/a/b.md", true}, // a trailing slash: everything under
		{"/docs/*.md", "docs/a.md", true},
		{"a/**/b", "a/b", true},
		{"a/**/b", "a/x/y/b", true},
		{"a/**/b", "a/x/y/c", false},
		{"**", "anything/at/all", true},
		{"**/**/x", "x", true},
		{"src/**/*_test.go", "src/pkg/a_test.go", true},
		{"src/**/*_test.go", "src/a_test.go", true},
		{"src/**/*_test.go", "src/pkg/a.go", false},
		{"a**b", "axxb", true}, // ** inside a segment is *
		{"a**b", "ax/xb", false},
		{"?", "/", false},
		{"[", "[", false}, // invalid: matches nothing
	}
	for _, tt := range tests {
		if got := matchGlob(tt.pattern, tt.name); got != tt.want {
			t.Errorf("matchGlob(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
	for _, bad := range []string{"", " ", "[", "a/[b/c", `x\`} {
		if checkGlob(bad) == nil {
			t.Errorf("checkGlob(%q): no error", bad)
		}
	}
	for _, good := range []string{"**", "a/**/b", "docs/", "/x", "[a-z]*", `\[`} {
		if err := checkGlob(good); err != nil {
			t.Errorf("checkGlob(%q): %v", good, err)
		}
	}
	// Many "**" against a deep path stay quick (a table, not backtracking).
	deep := strings.Repeat("a/", 2000) + "b"
	if matchGlob(strings.Repeat("**/a/", 200)+"c", deep) {
		t.Error("deep path matched")
	}
}

func TestWhenHolds(t *testing.T) {
	onMain := Facts{Branch: "main", Commit: "c1", Changed: []string{"docs/intro.md", "src/a.go"}, ChangedKnown: true}
	onTag := Facts{Tag: "v1.2.0", Commit: "c2", ChangedKnown: true}
	unknown := Facts{Branch: "feature/x"}
	tests := []struct {
		name   string
		when   *When
		facts  Facts
		holds  bool
		reason string
	}{
		{"no conditions", nil, onMain, true, ""},
		{"branch matches", &When{Branch: "main"}, onMain, true, ""},
		{"branch glob", &When{Branch: "feature/*"}, unknown, true, ""},
		{"branch differs", &When{Branch: "main"}, unknown, false, `when: branch "feature/x" does not match "main"`},
		{"branch of a tag build", &When{Branch: "main"}, onTag, false, `when: branch "main", but the build is of no branch (it is of tag "v1.2.0")`},
		{"tag matches", &When{Tag: "v1.*"}, onTag, true, ""},
		{"tag differs", &When{Tag: "v2.*"}, onTag, false, `when: tag "v1.2.0" does not match "v2.*"`},
		{"tag of a branch build", &When{Tag: "v*"}, onMain, false, `when: tag "v*", but the build is of no tag`},
		{"changed matches", &When{Changed: []string{"docs/**"}}, onMain, true, ""},
		{"changed second glob", &When{Changed: []string{"web/**", "**/*.go"}}, onMain, true, ""},
		{"nothing changed matches", &When{Changed: []string{"web/**", "*.md"}}, onMain, false, `when: no changed file matches "web/**" or "*.md"`},
		{"no file changed", &When{Changed: []string{"**"}}, onTag, false, `when: no changed file matches "**"`},
		{"changes unknown: holds", &When{Changed: []string{"web/**"}}, unknown, true, ""},
		{"all must hold", &When{Branch: "main", Changed: []string{"web/**"}}, onMain, false, `when: no changed file matches "web/**"`},
		{"all hold", &When{Branch: "ma*", Changed: []string{"src/"}}, onMain, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			holds, reason := tt.when.Holds(tt.facts)
			if holds != tt.holds || reason != tt.reason {
				t.Errorf("Holds = %v, %q; want %v, %q", holds, reason, tt.holds, tt.reason)
			}
		})
	}
}

func TestFactsParams(t *testing.T) {
	f := Facts{Branch: "main", Commit: "abc", Changed: []string{"a.go", "docs/b.md"}, ChangedKnown: true}
	p := f.Params()
	want := map[string]string{"branch": "main", "tag": "", "commit": "abc", "changed": "a.go\ndocs/b.md"}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Params = %q, want %q", p, want)
	}
	if back := FactsFromParams(p); !reflect.DeepEqual(back, f) {
		t.Errorf("FactsFromParams = %+v, want %+v", back, f)
	}

	// Unknown changes are left out, and read back as unknown.
	for _, unknown := range []Facts{
		{Branch: "main"},
		{ChangedKnown: true, Changed: []string{"odd\nname"}},
		{ChangedKnown: true, Changed: []string{strings.Repeat("x", maxChangedBytes)}},
	} {
		p := unknown.Params()
		if _, ok := p["changed"]; ok {
			t.Errorf("%+v: changed given as %q", unknown, p["changed"])
		}
		if FactsFromParams(p).ChangedKnown {
			t.Errorf("%+v: read back as known", unknown)
		}
	}
	// Nothing changed (an empty commit) is known.
	none := FactsFromParams(Facts{ChangedKnown: true}.Params())
	if !none.ChangedKnown || len(none.Changed) != 0 {
		t.Errorf("no change: %+v", none)
	}

	// A fact wins over a build parameter named like it: conditions are
	// judged on facts. Other parameters stay.
	merged := WithFacts(map[string]string{"branch": "mine", "env": "prod"}, f)
	if merged["branch"] != f.Branch || merged["env"] != "prod" || merged["commit"] != "abc" {
		t.Errorf("WithFacts = %q", merged)
	}
	// Changes unknown: a parameter named changed does not pose as them.
	unknown := WithFacts(map[string]string{"changed": "docs/x.md"}, Facts{Branch: "main"})
	if _, ok := unknown["changed"]; ok {
		t.Errorf("WithFacts with changes unknown = %q", unknown)
	}
}
