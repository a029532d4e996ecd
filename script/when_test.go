package script

import (
	"maps"
	"slices"
	"testing"

	"github.com/monkeyci/monkeyci/events"
)

// whenPlan: test always runs; docs on docs changes; release on v* tags,
// after test; deploy from main, after test, and announce after deploy.
const whenPlan = `
- id: test
  image: alpine
  script: [go test]
- id: docs
  image: alpine
  script: [make docs]
  when: {changed: [docs/**, "*.md"]}
- id: release
  image: alpine
  script: [make release]
  dependencies: [test]
  when: {tag: "v*"}
- id: deploy
  image: alpine
  script: [./deploy]
  dependencies: [test]
  when: {branch: main}
- id: announce
  image: alpine
  script: [./announce]
  dependencies: [deploy]
`

func TestDriveWhen(t *testing.T) {
	tests := []struct {
		name   string
		params map[string]string
		starts []string
		skips  map[string]string // id -> reason
	}{{
		name:   "a push to main that changed code",
		params: map[string]string{"branch": "main", "tag": "", "commit": "c1", "changed": "cmd/main.go\ngo.mod"},
		starts: []string{"test", "deploy", "announce"},
		skips: map[string]string{
			"docs":    `when: no changed file matches "docs/**" or "*.md"`,
			"release": `when: tag "v*", but the build is of no tag`,
		},
	}, {
		name:   "a push to a feature branch that changed docs",
		params: map[string]string{"branch": "feature/x", "tag": "", "commit": "c2", "changed": "docs/guide/intro.md"},
		starts: []string{"test", "docs"},
		skips: map[string]string{
			"release":  `when: tag "v*", but the build is of no tag`,
			"deploy":   `when: branch "feature/x" does not match "main"`,
			"announce": `dependency deploy was skipped (when: branch "feature/x" does not match "main")`,
		},
	}, {
		name:   "a tag, changes unknown",
		params: map[string]string{"branch": "", "tag": "v1.2.0", "commit": "c3"},
		starts: []string{"test", "docs", "release"},
		skips: map[string]string{
			"deploy":   `when: branch "main", but the build is of no branch (it is of tag "v1.2.0")`,
			"announce": `dependency deploy was skipped (when: branch "main", but the build is of no branch (it is of tag "v1.2.0"))`,
		},
	}, {
		name:   "branch main, a README changed",
		params: map[string]string{"branch": "main", "tag": "", "changed": "README.md"},
		starts: []string{"test", "docs", "deploy", "announce"},
		skips:  map[string]string{"release": `when: tag "v*", but the build is of no tag`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake("tok", tt.params, nil)
			got, err := drive(t, f, "tok", mustPlan(t, whenPlan))
			if err != nil {
				t.Fatalf("Drive: %v", err)
			}
			if got != events.Success {
				t.Errorf("result = %q, want success: skips alone do not fail a build", got)
			}
			log := f.log()
			if s := ids(ofKind(log, "start")); !slices.Equal(s, tt.starts) {
				t.Errorf("started %v, want %v", s, tt.starts)
			}
			skips := map[string]string{}
			for _, s := range ofKind(log, "skip") {
				skips[s.id] = s.reason
			}
			if !maps.Equal(skips, tt.skips) {
				t.Errorf("skips:\n got  %q\n want %q", skips, tt.skips)
			}
			// Skips are told before anything starts: the facts are known.
			if first := index(log, "start", "test"); first < len(tt.skips) {
				t.Errorf("a job started before every skip was told: %v", log)
			}
		})
	}
}

func TestDriveWhenBlockedJobIsSkippedWithoutUnblock(t *testing.T) {
	plan := mustPlan(t, `
- id: approve
  image: alpine
  script: [./deploy]
  blocked: true
  when: {branch: main}
`)
	f := newFake("tok", map[string]string{"branch": "dev"}, nil)
	got, err := drive(t, f, "tok", plan)
	if err != nil {
		t.Fatalf("Drive: %v", err)
	}
	if got != events.Success {
		t.Errorf("result = %q, want success", got)
	}
	log := f.log()
	if len(log) != 1 || log[0].kind != "skip" || log[0].reason != `when: branch "dev" does not match "main"` {
		t.Errorf("calls %v, want only the skip of approve", log)
	}
}

func TestDriveFactsInJobEnv(t *testing.T) {
	plan := mustPlan(t, "- {id: a, image: alpine, script: [env]}\n")
	f := newFake("tok", map[string]string{"branch": "main", "tag": "", "commit": "c1", "changed": "a\nb", "X": "1"}, nil)
	if _, err := drive(t, f, "tok", plan); err != nil {
		t.Fatalf("Drive: %v", err)
	}
	starts := ofKind(f.log(), "start")
	want := map[string]string{"branch": "main", "tag": "", "commit": "c1", "X": "1"}
	if len(starts) != 1 || !maps.Equal(starts[0].env, want) {
		t.Errorf("env %v, want %v: changed files stay out of a job's env", starts, want)
	}
}
