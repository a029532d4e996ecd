package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/buildscript"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/jobapi"
	"github.com/monkeyci/monkeyci/script"
	sdk "github.com/monkeyci/monkeyci/sdk"
)

func newScriptCommand() *cobra.Command {
	dir := "/workspace"
	cmd := &cobra.Command{
		Use:   "script",
		Short: "Run a build's script or declarative jobs through the job API (inside a script container)",
		Long: `script is what the agent runs in a build's script container, whatever its
image. Once the job API answers (the agent answers once it has fetched the
source) it copies the source (MONKEYCI_SOURCE, mounted read-only) into --dir.
It reads the build files from --dir, or, when the workspace lies over the
fetched source, from that source as fetched (MONKEYCI_BUILD_FILES, mounted
read-only: jobs the agent started ahead of this script may write in --dir).
Then it runs the build script, .monkeyci/build (executable, any language) or
.monkeyci/build.sh (with sh), in --dir with this process's output, and exits
with its exit code; the script drives the build through the job API
(monkeyci job, monkeyci param, or an SDK). Or else it loads the declarative
build files and starts, awaits and skips the jobs of the graph, exiting 0
when every job succeeded and 1 otherwise. The job API is the one named by
MONKEYCI_API, with the token in MONKEYCI_TOKEN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := sdk.Connect(context.Background())
			if err != nil {
				return usageError(err)
			}
			defer client.Close()
			api := client.API()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// The agent starts this container once it has fetched the
			// source, and answers the first call then; the source is then
			// copied into the workspace, from its read-only mount.
			if _, err := api.GetParams(ctx, &jobapi.GetParamsRequest{}); err != nil {
				return failedError(fmt.Errorf("waiting for the source: %w", err))
			}
			if src := os.Getenv("MONKEYCI_SOURCE"); src != "" {
				if err := agent.CopyWorkspace(dir, src); err != nil {
					return failedError(fmt.Errorf("filling the workspace: %w", err))
				}
			}
			// The build files as fetched, where the agent mounts them: jobs
			// it started ahead of this script may write in the workspace.
			files := cmp.Or(os.Getenv("MONKEYCI_BUILD_FILES"), dir)
			build, err := buildscript.Detect(files)
			if err != nil {
				return usageError(err)
			}
			if build.Kind != buildscript.Declarative {
				return runBuildScript(ctx, cmd, dir, build)
			}
			plan, err := pipeline.Load(files)
			if err != nil {
				return usageError(namedIn(err, files, dir))
			}
			result, err := script.Drive(ctx, api, plan)
			if err != nil {
				return failedError(err)
			}
			if result != events.Success {
				return &exitError{code: exitFailed}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", dir, "the directory holding .monkeyci/")
	return cmd
}

// runBuildScript runs a build script and exits with its code.
func runBuildScript(ctx context.Context, cmd *cobra.Command, dir string, build buildscript.Build) error {
	code, err := script.Run(ctx, dir, build, script.Stdio{In: os.Stdin, Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr()})
	switch {
	case err != nil:
		return usageError(err)
	case code != 0:
		return &exitError{code: code, err: fmt.Errorf("%s exited with code %d", build.Script, code)}
	}
	return nil
}

// namedIn names the build files that Load's errors point at as dir's,
// the workspace, when they were read from files, the same files as
// fetched: the place a person fixes is the repository's, not the
// script container's mount.
func namedIn(err error, files, dir string) error {
	rename := func(e *pipeline.Error) {
		if rest, ok := strings.CutPrefix(e.Pos.File, files+"/"); ok {
			e.Pos.File = filepath.Join(dir, rest)
		}
	}
	var many pipeline.Errors
	var one *pipeline.Error
	switch {
	case files == dir:
	case errors.As(err, &many):
		for _, e := range many {
			rename(e)
		}
	case errors.As(err, &one):
		rename(one)
	}
	return err
}
