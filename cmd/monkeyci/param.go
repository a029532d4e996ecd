package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	sdk "github.com/monkeyci/monkeyci/sdk"
)

func newParamCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "param",
		Short: "Read the build's parameters (inside a build script)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "get KEY",
		Short: "Print a build parameter",
		Long: `get prints the value of the build parameter KEY and a newline. It exits 1
when the build has no such parameter.`,
		Example: `  target=$(monkeyci param get target)`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, func(ctx context.Context, ci *sdk.Client) error {
				v, ok, err := ci.Param(ctx, args[0])
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("the build has no parameter %q", args[0])
				}
				fmt.Fprintln(stdout, v)
				return nil
			})
		},
	})
	return cmd
}
