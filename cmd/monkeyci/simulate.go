package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/coordinator/pool/sim"
)

func newSimulateCommand(stdout io.Writer) *cobra.Command {
	opts := sim.DefaultOptions()
	var trace string
	cmd := &cobra.Command{
		Use:   "simulate --trace FILE",
		Short: "Replay a day of build arrivals through the pool's real scaler, on a simulated clock",
		Long: `simulate replays a trace of build arrivals (CSV: arrival,jobs,durations;
arrival in seconds or HH:MM:SS, durations in seconds separated by ';')
through the pool's real scaler, with a simulated provider whose instances
boot in --boot, and prints the instance-hours used, the p50/p95 queue wait
and the scale events, beside a fixed pool sized for the peak.
coordinator/pool/sim/testdata/day.csv is a working day of a team.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if trace == "" {
				return usageError(fmt.Errorf("--trace FILE is required"))
			}
			f, err := os.Open(trace)
			if err != nil {
				return usageError(fmt.Errorf("--trace: %w", err))
			}
			defer f.Close()
			tr, err := sim.ParseTrace(f, filepath.Base(trace))
			if err != nil {
				return usageError(err)
			}
			res, err := sim.Run(tr, opts)
			if err != nil {
				return usageError(err)
			}
			return res.Print(stdout)
		},
	}
	f := cmd.Flags()
	f.StringVar(&trace, "trace", "", "the CSV of build arrivals")
	f.DurationVar(&opts.Boot, "boot", opts.Boot, "how long a new instance takes until its agent joins")
	f.BoolVar(&opts.Pause, "pause", opts.Pause, "agents pause waiting scripts (a build then needs 1 CPU, not 2)")
	f.IntVar(&opts.Min, "min", opts.Min, "--pool-min")
	f.IntVar(&opts.Max, "max", opts.Max, "--pool-max")
	f.IntVar(&opts.Idle, "idle", opts.Idle, "--pool-idle: idle agents kept warm")
	f.IntVar(&opts.AgentCPUs, "agent-cpus", opts.AgentCPUs, "--pool-agent-cpus")
	f.DurationVar(&opts.IdleTimeout, "idle-timeout", opts.IdleTimeout, "--pool-idle-timeout")
	f.DurationVar(&opts.Step, "step", opts.Step, "--pool-step: time between the scaler's steps")
	return cmd
}
