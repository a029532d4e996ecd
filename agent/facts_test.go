package agent

import (
	"maps"
	"testing"

	"github.com/monkeyci/monkeyci/pipeline"
)

func TestParamsCarryFactsOverTheBuildsOwn(t *testing.T) {
	spec := BuildSpec{Params: map[string]string{"env": "prod", "tag": "mine"}}
	if got := spec.params(); !maps.Equal(got, spec.Params) {
		t.Errorf("without facts: %v, want the params alone", got)
	}
	spec.Facts = &pipeline.Facts{Branch: "main", Tag: "v1", Commit: "abc", Changed: []string{"a", "b/c"}, ChangedKnown: true}
	want := map[string]string{"env": "prod", "tag": "v1", "branch": "main", "commit": "abc", "changed": "a\nb/c"}
	if got := spec.params(); !maps.Equal(got, want) {
		t.Errorf("with facts: %v, want %v (a fact wins over a parameter named like it)", got, want)
	}
}
