package main

import (
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func newPoolCommand(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "See the agent pool (instances, agents, decisions), or simulate a day of builds through its scaler",
		Args:  cobra.NoArgs,
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the pool's instances, their agents and states, and the scaler's last decisions",
		Long: `status shows the pool the coordinator runs (coordinator --pool): each
instance with its phase (starting, running, stopping), its agent and that
agent's state (not joined, idle, busy, draining, gone), and the scaler's
last decisions with their reasons.`,
		Args: cobra.NoArgs,
	}
	flags := addAdminFlags(status)
	out := addOutputFlag(status)
	status.RunE = func(cmd *cobra.Command, _ []string) error {
		resp, err := adminCall(cmd, flags, fleet.AdminClient.PoolStatus, &fleet.PoolStatusRequest{})
		if err != nil {
			return err
		}
		return out.print(stdout, admin.Pool(resp), func(w io.Writer) error { return admin.PoolTable(w, resp, time.Now()) })
	}
	cmd.AddCommand(status, newSimulateCommand(stdout))
	return cmd
}
