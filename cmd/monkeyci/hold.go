package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// newHoldCommand is what an agent's network holder container runs: it
// holds a network namespace for the agent's script containers to join, and
// does nothing else until it is stopped.
func newHoldCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "hold",
		Short:  "Do nothing until stopped (the agent's network holder container runs it)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			return nil
		},
	}
}
