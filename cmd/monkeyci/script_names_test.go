package main

import (
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/pipeline"
)

// A build file's problem read from the source as fetched is named as the
// workspace's file, the one a person knows; other errors are left alone.
func TestBuildFileErrorsNamedAsTheWorkspaces(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"one", &pipeline.Error{Pos: pipeline.Position{File: "/opt/monkeyci/source/.monkeyci/build.yaml", Line: 3, Column: 3}, Msg: "invalid YAML"},
			"/workspace/.monkeyci/build.yaml:3:3: invalid YAML"},
		{"several", pipeline.Errors{
			{Pos: pipeline.Position{File: "/opt/monkeyci/source/.monkeyci/build.yaml", Line: 1}, Msg: "a"},
			{Pos: pipeline.Position{File: "/opt/monkeyci/source/.monkeyci/build.json", Line: 2}, Msg: "b"},
		}, "/workspace/.monkeyci/build.yaml:1: a\n/workspace/.monkeyci/build.json:2: b"},
		{"another file", &pipeline.Error{Pos: pipeline.Position{File: "/opt/monkeyci/sourcex/build.yaml", Line: 1}, Msg: "c"},
			"/opt/monkeyci/sourcex/build.yaml:1: c"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := namedIn(tt.err, "/opt/monkeyci/source", "/workspace").Error(); !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
