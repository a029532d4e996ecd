package main

import (
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func newCoordinatorsCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "coordinators",
		Short: "See the coordinators sharing a database, and which one leads",
		Args:  cobra.NoArgs,
	}
	flags := addAdminFlags(cmd)
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the coordinators sharing the database: which leads, which stand by",
		Long: `ls lists the coordinators that share the coordinator's database (--database
postgres://...) and were seen in the last minute: the leader, which takes the
agents and runs dispatch, lease checks, the pool, retention and forge
statuses, with its term (the fencing number), and the standbys, which serve
the dashboard, the admin API and webhooks and take over when the leader goes.
One not seen within the role's lease (--leader-ttl: stopped, killed, or cut
off from the database) is listed as gone. The one that answered is marked *.
A coordinator alone on its SQLite file is the one leader.`,
		Example: `  monkeyci coordinators ls
  monkeyci coordinators ls -o json`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(ls)
	ls.RunE = func(cmd *cobra.Command, _ []string) error {
		resp, err := adminCall(cmd, flags, fleet.AdminClient.ListCoordinators, &fleet.ListCoordinatorsRequest{})
		if err != nil {
			return err
		}
		cs := resp.GetCoordinators()
		return out.print(stdout, admin.Coordinators(cs), func(w io.Writer) error { return admin.CoordinatorsTable(w, cs, time.Now()) })
	}
	cmd.AddCommand(ls)
	return cmd
}
