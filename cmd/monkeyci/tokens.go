package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func newTokensCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Make, list and revoke tokens for agents, admins and viewers",
		Args:  cobra.NoArgs,
	}
	flags := addAdminFlags(cmd)
	var kind string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --kind agent|admin|viewer",
		Short: "Make a token and print it",
		Long: `create makes a token and prints it; the coordinator keeps only its hash,
so it cannot be shown again. An agent token lets an agent join (--join-token),
an admin token allows every admin call, a viewer token only reading. With
--ttl it stops working that long after; without, it works until revoked.`,
		Example: `  monkeyci tokens create --kind viewer
  monkeyci tokens create --kind agent --ttl 1h
  MONKEYCI_TOKEN=$(monkeyci tokens create --kind admin)`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(create)
	create.Flags().StringVar(&kind, "kind", "", "the token's kind: agent, admin or viewer (required)")
	create.Flags().DurationVar(&ttl, "ttl", 0, "how long the token works, like 1h or 30m (default: until revoked)")
	_ = create.RegisterFlagCompletionFunc("kind", cobra.FixedCompletions(admin.TokenKinds, cobra.ShellCompDirectiveNoFileComp))
	create.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := admin.CheckKind(kind); err != nil {
			return usageError(err)
		}
		if ttl < 0 || ttl > 0 && ttl < time.Second {
			return usageError(fmt.Errorf("--ttl %s: give a second or more, like 1h", ttl))
		}
		resp, err := adminCall(cmd, flags, fleet.AdminClient.CreateToken, &fleet.CreateTokenRequest{Kind: kind, TtlSeconds: int64(ttl / time.Second)})
		if err != nil {
			return err
		}
		made := struct {
			Token   string     `json:"token"`
			Kind    string     `json:"kind"`
			ID      string     `json:"id"`
			Expires *time.Time `json:"expires,omitempty"`
		}{resp.GetToken(), resp.GetKind(), resp.GetId(), admin.TimeOf(resp.GetExpires())}
		return out.print(stdout, made, line("%s", resp.GetToken()))
	}
	cmd.AddCommand(create, newTokensLsCommand(stdout, flags), newTokensRevokeCommand(stdout, flags))
	return cmd
}

func newTokensLsCommand(stdout io.Writer, flags *adminFlags) *cobra.Command {
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the tokens by id: kind, created, last used, expiry (never the token)",
		Long: `ls lists the tokens by their short id (the first hex digits of the token's
SHA-256), never the tokens themselves: their kind, when they were made and
last used (to the minute), and when they expire. The coordinator's own admin
and join tokens (its flags or data dir) are listed too; they are replaced by
restarting it with others, not revoked.`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(ls)
	ls.RunE = func(cmd *cobra.Command, _ []string) error {
		resp, err := adminCall(cmd, flags, fleet.AdminClient.ListTokens, &fleet.ListTokensRequest{})
		if err != nil {
			return err
		}
		return out.print(stdout, admin.Tokens(resp.GetTokens()), func(w io.Writer) error { return admin.TokensTable(w, resp.GetTokens(), time.Now()) })
	}
	return ls
}

func newTokensRevokeCommand(stdout io.Writer, flags *adminFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token at once: its calls, joins and dashboard sessions are refused",
		Long: `revoke ends the token whose id 'tokens ls' shows (or a unique prefix of at
least 4 of its digits). The next call, join or dashboard page with it is
refused. Agents that joined with it keep their own credentials: remove them
with 'monkeyci agents rm'.`,
		Example: "  monkeyci tokens revoke 3f9a1c07b2e4",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := adminCall(cmd, flags, fleet.AdminClient.RevokeToken, &fleet.TokenRef{Id: args[0]})
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%s token %s is revoked\n", info.GetKind(), info.GetId())
			return err
		},
	}
}
