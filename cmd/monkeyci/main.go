// Command monkeyci is the one binary of MonkeyCI fleet: local runs, the
// script runner inside script containers, and the sidecar. Commands only
// wire packages together; the logic lives in the packages.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes of monkeyci (docs/architecture.md, Names).
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// exitError ends the program with a code after printing its message (if any).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func usageError(err error) error  { return &exitError{exitUsage, err} }
func failedError(err error) error { return &exitError{exitFailed, err} }

var version = "dev"

func main() {
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

func execute(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "monkeyci:", ee.err)
		}
		return ee.code
	}
	// cobra's own errors are about flags and arguments.
	fmt.Fprintln(stderr, "monkeyci:", err)
	return exitUsage
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "monkeyci",
		Short: "Self-hosted CI/CD: run builds on your own machines",
		Long: `monkeyci runs builds defined in a repository's .monkeyci/ directory
(build.yaml, build.yml, build.json or build.edn, or a build script in any
language: build or build.sh) in containers on the local Docker engine. Each build's script container is paused while its jobs run,
handing its CPU to the jobs.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	// A flag it does not know: where to find the ones it does.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w (%s --help lists its flags)", err, c.CommandPath())
	})
	root.AddCommand(
		newRunCommand(stdout, stderr),
		newVerifyCommand(stdout),
		newScriptCommand(),
		newJobCommand(stdout, stderr),
		newParamCommand(stdout),
		newSidecarCommand(stdout),
		newCoordinatorCommand(stdout, stderr),
		newAgentCommand(stderr),
		newUpCommand(stdout, stderr),
		newAgentsCommand(stdout),
		newBuildsCommand(stdout),
		newLogsCommand(stdout, stderr),
		newArtifactsCommand(stdout, stderr),
		newTriggerCommand(stdout, stderr),
		newTokensCommand(stdout),
		newCoordinatorsCommand(stdout),
		newMigrateCommand(stdout, stderr),
		newReposCommand(stdout, stderr),
		newSecretsCommand(stdout, stderr),
		newPoolCommand(stdout, stderr),
	)
	return root
}
