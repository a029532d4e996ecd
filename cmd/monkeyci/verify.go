package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/pipeline"
)

func newVerifyCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "verify [DIR]",
		Short: "Check a repository's build files and print its job graph",
		Long: `verify reads DIR/.monkeyci/build.{yaml,yml,json,edn} (DIR defaults to the
current directory), reports every problem as file:line:col, and prints the
job graph. It exits 0 when the files are valid and 2 when they are not.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := pipeline.Load(dirArg(args))
			if err != nil {
				return usageError(err)
			}
			fmt.Fprint(stdout, plan.Describe())
			return nil
		},
	}
}

func dirArg(args []string) string {
	if len(args) == 0 {
		return "."
	}
	return args[0]
}
