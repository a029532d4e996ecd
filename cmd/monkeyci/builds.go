package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func newBuildsCommand(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "builds",
		Short: "List, show, cancel, retry and unblock the coordinator's builds",
		Long: `builds lists, shows, cancels, retries and unblocks the coordinator's builds.
Where a build's ID is asked for (here and in monkeyci logs), the start of
it will do when it names exactly one build.`,
		Args: cobra.NoArgs,
	}
	flags := addAdminFlags(cmd)

	var repo, state, branch string
	var limit int
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List builds, newest first",
		Example: `  monkeyci builds ls --state running
  monkeyci builds ls --repo me/app --branch feature/login
  monkeyci builds ls --repo https://github.com/me/app --limit 5 -o json`,
		Args: cobra.NoArgs,
	}
	lsOut := addOutputFlag(ls)
	ls.Flags().StringVar(&repo, "repo", "", "only the builds of this repository (its key: the URL it was triggered with)")
	ls.Flags().StringVar(&state, "state", "", "only builds in this state: queued, running or ended")
	ls.Flags().StringVar(&branch, "branch", "", "only the builds of this branch")
	ls.Flags().IntVar(&limit, "limit", 50, "at most this many builds (0: all)")
	_ = ls.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(admin.States, cobra.ShellCompDirectiveNoFileComp))
	ls.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := admin.CheckState(state); err != nil {
			return usageError(err)
		}
		if limit < 0 || limit > 1<<31-1 {
			return usageError(fmt.Errorf("--limit %d: expected 0 or more", limit))
		}
		resp, err := adminCall(cmd, flags, fleet.AdminClient.ListBuilds, &fleet.ListBuildsRequest{Repo: repo, State: state, Branch: branch, Limit: int32(limit)})
		if err != nil {
			return err
		}
		return lsOut.print(stdout, admin.Builds(resp.GetBuilds()), func(w io.Writer) error { return admin.BuildsTable(w, resp.GetBuilds(), time.Now()) })
	}

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a build: its fields, why it waits, and its events",
		Long: `show prints a build's fields, among them waiting (why no agent has taken
a queued build) and message (why it ended as it did), then its events, one
per line: time, type, job, status and message.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: flags.completeBuilds,
	}
	showOut := addOutputFlag(show)
	show.RunE = func(cmd *cobra.Command, args []string) error {
		d, err := adminCall(cmd, flags, fleet.AdminClient.GetBuild, &fleet.GetBuildRequest{Id: args[0]})
		if err != nil {
			return err
		}
		return showOut.print(stdout, admin.Detail(d), func(w io.Writer) error { return admin.DetailText(w, d, time.Now()) })
	}

	cmd.AddCommand(ls, show,
		buildChange(flags, stdout, "cancel", "Cancel a build: queued, it ends at once; running, its containers stop", fleet.AdminClient.CancelBuild),
		buildChange(flags, stdout, "retry", "Queue an ended build again", fleet.AdminClient.RetryBuild),
		buildUnblock(flags, stdout),
	)
	return cmd
}

// buildUnblock is `builds unblock`: a person's approval of a blocked job.
func buildUnblock(flags *adminFlags, stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "unblock BUILD JOB",
		Short: "Let a blocked job of a running build run (a manual approval)",
		Long: `unblock lets a job declared blocked: true run. The job must wait for it:
its build runs, and has told job/blocked for it (builds show lists it).`,
		Example:           `  monkeyci builds unblock 3f2a9c deploy`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: flags.completeBuilds,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		b, err := adminCall(cmd, flags, fleet.AdminClient.UnblockJob, &fleet.UnblockJobRequest{Build: args[0], Job: args[1]})
		if err != nil {
			return err
		}
		return out.print(stdout, admin.Build(b), line("job %s of build %s is unblocked: it runs once its dependencies have succeeded", args[1], b.GetId()))
	}
	return cmd
}

// buildChange is `builds cancel` or `builds retry`: one call on one build,
// which prints the build's state after it.
func buildChange(flags *adminFlags, stdout io.Writer, name, short string, call func(fleet.AdminClient, context.Context, *fleet.BuildRef, ...grpc.CallOption) (*fleet.BuildInfo, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:               name + " ID",
		Short:             short,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: flags.completeBuilds,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		b, err := adminCall(cmd, flags, call, &fleet.BuildRef{Id: args[0]})
		if err != nil {
			return err
		}
		said := fmt.Sprintf("build %s is %s", b.GetId(), b.GetState())
		switch {
		case b.GetState() == admin.StateEnded && b.GetResult() != "":
			said += " (" + b.GetResult() + ")"
		case name == "cancel":
			said += ": it is told to stop" // its containers stop, then it ends
		}
		return out.print(stdout, admin.Build(b), line("%s", said))
	}
	return cmd
}
