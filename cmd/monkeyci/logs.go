package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
)

// logsPoll is how often a follower looks at the build (0: the default);
// tests make it short.
var logsPoll time.Duration

func newLogsCommand(stdout, stderr io.Writer) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs BUILD [JOB]",
		Short: "Write a build's output: every job's, or one job's",
		Long: `logs writes the output of a build's latest attempt to stdout. Without JOB,
the output of every job, each line prefixed with its job ("script" for the
script container); with JOB, that job's bytes as they are.

With -f it goes on writing what arrives until the build ends, waiting for a
queued build to start and moving on to the next attempt when an agent is
lost.`,
		Example: `  monkeyci logs 3f2a9c
  monkeyci logs 3f2a9c test -f`,
		Args: cobra.RangeArgs(1, 2),
	}
	flags := addAdminFlags(cmd)
	cmd.ValidArgsFunction = flags.completeBuilds
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "go on until the build ends")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		o := admin.LogOptions{Build: args[0], Follow: follow, Poll: logsPoll, Notes: stderr}
		if len(args) == 2 {
			o.Job = args[1]
		}
		c, err := flags.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, stop := followContext(cmd)
		defer stop()
		b, err := admin.Logs(ctx, c, o, stdout)
		switch {
		case err != nil && ctx.Err() != nil && cmdContext(cmd).Err() == nil:
			return &exitError{code: exitFailed} // Ctrl-C: stop following
		case err != nil:
			return adminFailed(c, err)
		case b.GetAttempt() == 0:
			fmt.Fprintf(stderr, "monkeyci: build %s has not run: it is %s", b.GetId(), b.GetState())
			if w := b.GetWaiting(); w != "" {
				fmt.Fprintf(stderr, " (%s)", w)
			}
			fmt.Fprintln(stderr)
		}
		return nil
	}
	return cmd
}
