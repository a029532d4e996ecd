package main

import (
	"context"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func newSecretsCommand(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Set, list and remove a repository's build secrets",
		Long: `secrets keeps a registered repository's build secrets, encrypted on the
coordinator; its builds get them as environment variables named by their
keys. Values are read from standard input, never from the command line,
and are never shown again.`,
		Args: cobra.NoArgs,
	}
	flags := addAdminFlags(cmd)

	set := &cobra.Command{
		Use:   "set REPO KEY",
		Short: "Set a secret of a repository, reading its value from standard input",
		Long: `set sets the secret KEY of the registered repository REPO (letters, digits
and _: it becomes an environment variable) and prints its name, never its
value.

The value is read from standard input, never from the command line, where
other users and the shell's history would see it. From a terminal, set
prompts for it and reads one line; otherwise it reads all of standard input.
One trailing newline is dropped. An empty value is refused.`,
		Example: `  monkeyci secrets set me/app NPM_TOKEN            # prompts for the value
  printf %s "$TOKEN" | monkeyci secrets set me/app NPM_TOKEN
  monkeyci secrets set me/app KUBECONFIG < ~/.kube/config`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: flags.completeSecrets,
	}
	setOut := addOutputFlag(set)
	set.RunE = func(cmd *cobra.Command, args []string) error {
		value, err := readSecret(cmd, stderr, "value for "+args[1]+": ", "the value of "+args[1])
		if err != nil {
			return err
		}
		s, err := adminCall(cmd, flags, fleet.AdminClient.SetSecret, &fleet.SetSecretRequest{Repo: args[0], Key: args[1], Value: value})
		if err != nil {
			return err
		}
		return setOut.print(stdout, admin.Secret(s), line("secret %s of %s is set", s.GetKey(), s.GetRepo()))
	}

	ls := &cobra.Command{
		Use:               "ls REPO",
		Aliases:           []string{"list"},
		Short:             "List a repository's secrets: their keys and when they were set, never their values",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: flags.completeRepos,
	}
	lsOut := addOutputFlag(ls)
	ls.RunE = func(cmd *cobra.Command, args []string) error {
		resp, err := adminCall(cmd, flags, fleet.AdminClient.ListSecrets, &fleet.RepoRef{Name: args[0]})
		if err != nil {
			return err
		}
		return lsOut.print(stdout, admin.Secrets(resp.GetSecrets()), func(w io.Writer) error { return admin.SecretsTable(w, resp.GetSecrets(), time.Now()) })
	}

	rm := &cobra.Command{
		Use:               "rm REPO KEY",
		Aliases:           []string{"remove"},
		Short:             "Remove a secret of a repository",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: flags.completeSecrets,
	}
	rmOut := addOutputFlag(rm)
	rm.RunE = func(cmd *cobra.Command, args []string) error {
		s, err := adminCall(cmd, flags, fleet.AdminClient.RemoveSecret, &fleet.SecretRef{Repo: args[0], Key: args[1]})
		if err != nil {
			return err
		}
		return rmOut.print(stdout, admin.Secret(s), line("removed secret %s of %s", s.GetKey(), s.GetRepo()))
	}

	cmd.AddCommand(set, ls, rm)
	return cmd
}

// completeSecrets offers repository names, then the repository's secret
// keys.
func (f *adminFlags) completeSecrets(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return f.completeRepos(cmd, args, toComplete)
	case 1:
		return f.complete(cmd, func(ctx context.Context, c *admin.Client) ([]cobra.Completion, error) {
			resp, err := c.ListSecrets(ctx, &fleet.RepoRef{Name: args[0]})
			if err != nil {
				return nil, err
			}
			var out []cobra.Completion
			for _, s := range resp.GetSecrets() {
				out = append(out, s.GetKey())
			}
			return out, nil
		})
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}
