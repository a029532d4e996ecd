package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/jobapi"
	"github.com/monkeyci/monkeyci/script"
)

func newScriptCommand() *cobra.Command {
	dir := "/workspace"
	cmd := &cobra.Command{
		Use:   "script",
		Short: "Run a build's declarative jobs through the job API (inside a script container)",
		Long: `script is what the agent runs in a build's script container. Once the job
API answers (the agent answers once it has fetched the source) it copies the
source (MONKEYCI_SOURCE, mounted read-only) into --dir, loads the build files
from there, and starts, awaits and skips the jobs of the graph
through the job API named by MONKEYCI_API with the token in MONKEYCI_TOKEN.
It exits 0 when every job succeeded and 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, closeAPI, err := script.DialFromEnv()
			if err != nil {
				return usageError(err)
			}
			defer closeAPI()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// The agent fetches the source while this container starts,
			// and answers the first call once it has; then it is copied
			// into the workspace, from its read-only mount.
			if _, err := api.GetParams(ctx, &jobapi.GetParamsRequest{}); err != nil {
				return failedError(fmt.Errorf("waiting for the source: %w", err))
			}
			if src := os.Getenv("MONKEYCI_SOURCE"); src != "" {
				if err := agent.CopyWorkspace(dir, src); err != nil {
					return failedError(fmt.Errorf("filling the workspace: %w", err))
				}
			}
			plan, err := pipeline.Load(dir)
			if err != nil {
				return usageError(err)
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
