package main

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func newAgentsCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "List the coordinator's agents; drain, cordon, uncordon or remove one",
		Args:  cobra.NoArgs,
	}
	flags := addAdminFlags(cmd)

	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the agents, their state, capacity and builds",
		Long: `ls lists every agent the coordinator knows: its state (ready, cordoned,
draining, lost), its capacity, what of it is free (CPUs/memory), how many
builds it runs and its labels.`,
		Args: cobra.NoArgs,
	}
	lsOut := addOutputFlag(ls)
	ls.RunE = func(cmd *cobra.Command, _ []string) error {
		resp, err := adminCall(cmd, flags, fleet.AdminClient.ListAgents, &fleet.ListAgentsRequest{})
		if err != nil {
			return err
		}
		return lsOut.print(stdout, admin.Agents(resp.GetAgents()), func(w io.Writer) error { return admin.AgentsTable(w, resp.GetAgents()) })
	}
	cmd.AddCommand(ls)

	for _, a := range []struct {
		name, short string
		action      fleet.SetAgentRequest_Action
	}{
		{"drain", "Let an agent finish its builds and take no new ones, then exit", fleet.SetAgentRequest_DRAIN},
		{"cordon", "Stop giving an agent new builds; its running builds go on", fleet.SetAgentRequest_CORDON},
		{"uncordon", "Give a cordoned agent builds again", fleet.SetAgentRequest_UNCORDON},
	} {
		sub := &cobra.Command{
			Use:               a.name + " ID_OR_NAME",
			Short:             a.short,
			Args:              cobra.ExactArgs(1),
			ValidArgsFunction: flags.completeAgents,
		}
		out := addOutputFlag(sub)
		action := a.action
		sub.RunE = func(cmd *cobra.Command, args []string) error {
			info, err := adminCall(cmd, flags, fleet.AdminClient.SetAgent, &fleet.SetAgentRequest{Id: args[0], Action: action})
			if err != nil {
				return err
			}
			return out.print(stdout, admin.Agent(info), line("agent %s (%s) is %s", info.GetName(), info.GetId(), info.GetState()))
		}
		cmd.AddCommand(sub)
	}
	rm := &cobra.Command{
		Use:     "rm ID_OR_NAME",
		Aliases: []string{"remove"},
		Short:   "Revoke an agent's credential and end its connection at once",
		Long: `rm forgets an agent: its credential is revoked and its connection ended at
once; it is refused from then on, and its builds go back to the queue as a
lost agent's do. A join token it still holds would join it again as a new
agent: revoke that too ('monkeyci tokens revoke') to keep the machine out.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: flags.completeAgents,
	}
	rmOut := addOutputFlag(rm)
	rm.RunE = func(cmd *cobra.Command, args []string) error {
		info, err := adminCall(cmd, flags, fleet.AdminClient.RemoveAgent, &fleet.AgentRef{Id: args[0]})
		if err != nil {
			return err
		}
		return rmOut.print(stdout, admin.Agent(info), line("agent %s (%s) is removed", info.GetName(), info.GetId()))
	}
	cmd.AddCommand(rm)
	return cmd
}
