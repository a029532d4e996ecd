package buildscript

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/monkeyci/monkeyci/pipeline"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name    string
		files   []string
		want    Build
		wantErr string
	}{
		{"declarative", []string{".monkeyci/build.yaml", ".monkeyci/build.edn"}, Build{Kind: Declarative}, ""},
		{"executable", []string{".monkeyci/build", ".monkeyci/script.yaml"}, Build{Kind: Executable, Script: ".monkeyci/build"}, ""},
		{"shell", []string{".monkeyci/build.sh"}, Build{Kind: Shell, Script: ".monkeyci/build.sh"}, ""},
		{"both kinds", []string{".monkeyci/build.yaml", ".monkeyci/build.sh"}, Build{},
			"the repository has both declarative build files (.monkeyci/build.yaml) and a build script (.monkeyci/build.sh): keep one or the other"},
		{"two scripts", []string{".monkeyci/build", ".monkeyci/build.sh"}, Build{},
			"the repository has two build scripts, .monkeyci/build and .monkeyci/build.sh: keep one"},
		{"none", []string{".monkeyci/script.yaml"}, Build{}, "no build file in"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				write(t, dir, f, "x")
			}
			got, err := Detect(dir)
			if tc.wantErr == "" {
				if err != nil || got != tc.want {
					t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error saying %q", err, tc.wantErr)
			}
		})
	}
	_, err := Detect(t.TempDir())
	if !errors.Is(err, pipeline.ErrNoBuildFile) {
		t.Errorf("%v does not wrap pipeline.ErrNoBuildFile", err)
	}
}

// Detect runs on the agent's host too: a build file that is a link out
// of the repository counts as none.
func TestDetectCountsNoLinkOutOfTheRepository(t *testing.T) {
	outside := t.TempDir()
	write(t, outside, "build.sh", "true\n")
	dir := t.TempDir()
	write(t, dir, ".monkeyci/build.yaml", "x")
	if err := os.Symlink(filepath.Join(outside, "build.sh"), filepath.Join(dir, ShellFile)); err != nil {
		t.Fatal(err)
	}
	got, err := Detect(dir)
	if err != nil || got != (Build{Kind: Declarative}) {
		t.Errorf("got %+v, %v; want a declarative build (the link out counts as no script)", got, err)
	}
}
