// Package buildscript says how a repository defines its build: declarative
// build files (.monkeyci/build.{yaml,yml,json,edn}, read by pipeline) or a
// build script in any language (.monkeyci/build, executable, or
// .monkeyci/build.sh), and reads the script container's settings
// (.monkeyci/script.yaml). It only reads the files it is given.
package buildscript

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/monkeyci/monkeyci/pipeline"
)

// Kind is how a repository defines its build.
type Kind int

const (
	// Declarative: build files that `monkeyci script` drives.
	Declarative Kind = iota + 1
	// Executable: .monkeyci/build, run as it is (its #! line, or a binary).
	Executable
	// Shell: .monkeyci/build.sh, run by sh.
	Shell
)

// The build scripts, relative to the repository.
const (
	ExecutableFile = ".monkeyci/build"
	ShellFile      = ".monkeyci/build.sh"
)

// declarativeFiles are pipeline's build files.
var declarativeFiles = []string{"build.yaml", "build.yml", "build.json", "build.edn"}

// Build is what Detect found.
type Build struct {
	Kind Kind
	// Script is the build script, relative to the repository ("" for a
	// declarative build).
	Script string
}

// Detect says how the repository in dir defines its build. Declarative
// files and a build script together are an error, and so are two scripts:
// which one runs would be a guess. Without any, the error wraps
// pipeline.ErrNoBuildFile.
//
// It looks through an os.Root: a symbolic link that leads out of the
// repository counts as no file (the agent runs Detect on its own host).
func Detect(dir string) (Build, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Build{}, fmt.Errorf("reading %s: %w", dir, err)
	}
	defer root.Close()
	mdir := filepath.Join(dir, ".monkeyci")
	var decl []string
	for _, name := range declarativeFiles {
		if isFile(root, ".monkeyci/"+name) {
			decl = append(decl, ".monkeyci/"+name)
		}
	}
	var scripts []string
	for _, s := range []string{ExecutableFile, ShellFile} {
		if isFile(root, s) {
			scripts = append(scripts, s)
		}
	}
	switch {
	case len(decl) > 0 && len(scripts) > 0:
		return Build{}, fmt.Errorf("the repository has both declarative build files (%s) and a build script (%s): keep one or the other",
			strings.Join(decl, ", "), strings.Join(scripts, ", "))
	case len(scripts) > 1:
		return Build{}, fmt.Errorf("the repository has two build scripts, %s and %s: keep one", scripts[0], scripts[1])
	case len(scripts) == 1 && scripts[0] == ShellFile:
		return Build{Kind: Shell, Script: ShellFile}, nil
	case len(scripts) == 1:
		return Build{Kind: Executable, Script: ExecutableFile}, nil
	case len(decl) > 0:
		return Build{Kind: Declarative}, nil
	}
	return Build{}, fmt.Errorf("%w in %s (expected build.yaml, build.yml, build.json or build.edn, or a build script: build or build.sh)", pipeline.ErrNoBuildFile, mdir)
}

// isFile reports whether name is a regular file in root, links followed
// while they stay inside it.
func isFile(root *os.Root, name string) bool {
	fi, err := root.Stat(name)
	return err == nil && fi.Mode().IsRegular()
}
