package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
)

// outputFlag is a command's -o: its result printed for people (a table or
// a line) or as JSON with stable keys, for scripts.
type outputFlag struct{ format string }

// addOutputFlag adds -o table|json to cmd. A format that is neither is
// refused before the command runs: before anything is read or asked.
func addOutputFlag(cmd *cobra.Command) *outputFlag {
	o := &outputFlag{}
	cmd.Flags().StringVarP(&o.format, "output", "o", admin.FormatTable, "output format: table or json (stable keys, for scripts)")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{admin.FormatTable, admin.FormatJSON}, cobra.ShellCompDirectiveNoFileComp))
	cmd.PreRunE = func(*cobra.Command, []string) error {
		if err := admin.CheckFormat(o.format); err != nil {
			return usageError(err)
		}
		return nil
	}
	return o
}

// print writes a result to w: asJSON as JSON with -o json, else what
// forPeople writes.
func (o *outputFlag) print(w io.Writer, asJSON any, forPeople func(io.Writer) error) error {
	if o.format == admin.FormatJSON {
		return admin.WriteJSON(w, asJSON)
	}
	return forPeople(w)
}

// line is a result for people that is one line of text.
func line(format string, args ...any) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := fmt.Fprintf(w, format+"\n", args...)
		return err
	}
}
