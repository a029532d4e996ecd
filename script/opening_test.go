package script

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// Opening is what Drive starts first, as Drive starts it: the agent
// starts those jobs ahead of the script, and the script's own start of
// each must then ask exactly what was started.
func TestOpeningIsWhatDriveStartsFirst(t *testing.T) {
	params := map[string]string{pipeline.ParamBranch: "feature", pipeline.ParamCommit: "abc", pipeline.ParamChanged: "src/a.go\nREADME.md", "GREETING": "hi"}
	tests := []struct {
		name, plan string
		want       []string
	}{
		{"a diamond opens with its root", diamond, []string{"a"}},
		{"independent jobs open together", "- {id: a, image: i, env: {GREETING: own}}\n- {id: b, image: i}", []string{"a", "b"}},
		{"an unwanted job is left out with its dependents", `
- {id: deploy, image: i, when: {branch: main}}
- {id: after-deploy, image: i, dependencies: [deploy]}
- {id: test, image: i, when: {changed: ["src/**"]}}
`, []string{"test"}},
		{"a blocked job waits", "- {id: gate, image: i, blocked: true}\n- {id: b, image: i}", []string{"b"}},
		{"a service opens alone: its dependents follow its start", "- {id: db, image: i, expose: [5432]}\n- {id: t, image: i, dependencies: [db]}", []string{"db"}},
		{"an arch is asked of the agent first", "- {id: a, image: i, arch: amd}\n- {id: b, image: i}", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan := mustPlan(t, tt.plan)
			opening, err := Opening(plan, params)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, j := range opening {
				got = append(got, j.ID)
				if _, ok := j.Env[pipeline.ParamChanged]; ok {
					t.Errorf("job %s: the changed files are in its environment", j.ID)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Opening = %v, want %v", got, tt.want)
			}
			f := newFake("tok", params, nil)
			if _, err := drive(t, f, "tok", plan); err != nil {
				t.Fatal(err)
			}
			starts := ofKind(f.log(), "start")
			if len(starts) < len(opening) {
				t.Fatalf("Drive started %v, fewer than the opening %v", ids(starts), got)
			}
			for i, j := range opening {
				if !proto.Equal(starts[i].job, jobapi.JobToProto(j)) {
					t.Errorf("start %d: Drive asked\n%v\nthe opening has\n%v", i, starts[i].job, jobapi.JobToProto(j))
				}
			}
		})
	}
}
