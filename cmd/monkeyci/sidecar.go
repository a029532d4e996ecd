package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/sidecar"
)

func newSidecarCommand(stdout io.Writer) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "sidecar --dir DIR",
		Short: "Stream a job container's event log and log files as JSON lines",
		Long: `sidecar follows the files a job's wrapper writes in DIR (events.edn and
logs/N_out.log, logs/N_err.log) and writes each event and each slice of
output, with its byte offset, as one JSON object per line on stdout. It is
for runtimes where the agent cannot read the job's files itself. It stops
after the job's last event, or on SIGTERM after draining what was written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return usageError(errRequired("--dir"))
			}
			stop := make(chan struct{})
			sigs := make(chan os.Signal, 1)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			go func() {
				<-sigs
				close(stop)
			}()
			if err := sidecar.Stream(context.Background(), dir, stdout, stop); err != nil {
				return failedError(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the job's files directory (required)")
	return cmd
}
