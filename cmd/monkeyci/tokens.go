package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func newTokensCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Make tokens for agents, admins and viewers",
		Args:  cobra.NoArgs,
	}
	flags := addAdminFlags(cmd)
	var kind string
	create := &cobra.Command{
		Use:   "create --kind agent|admin|viewer",
		Short: "Make a token and print it",
		Long: `create makes a token and prints it; the coordinator keeps only its hash,
so it cannot be shown again. An agent token lets an agent join (--join-token),
an admin token allows every admin call, a viewer token only reading.`,
		Example: `  monkeyci tokens create --kind viewer
  MONKEYCI_TOKEN=$(monkeyci tokens create --kind admin)`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(create)
	create.Flags().StringVar(&kind, "kind", "", "the token's kind: agent, admin or viewer (required)")
	_ = create.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions(admin.TokenKinds, cobra.ShellCompDirectiveNoFileComp))
	create.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		if err := admin.CheckKind(kind); err != nil {
			return usageError(err)
		}
		resp, err := adminCall(cmd, flags, fleet.AdminClient.CreateToken, &fleet.CreateTokenRequest{Kind: kind})
		if err != nil {
			return err
		}
		if *out == admin.FormatJSON {
			return admin.WriteJSON(stdout, struct {
				Token string `json:"token"`
				Kind  string `json:"kind"`
			}{resp.GetToken(), resp.GetKind()})
		}
		_, err = fmt.Fprintln(stdout, resp.GetToken())
		return err
	}
	cmd.AddCommand(create)
	return cmd
}
