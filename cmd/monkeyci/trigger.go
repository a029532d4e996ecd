package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func newTriggerCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		repo, branch, commit, tag string
		priority                  string
		params, labels            []string
		wait                      bool
	)
	cmd := &cobra.Command{
		Use:   "trigger --repo URL_OR_PATH",
		Short: "Queue a build on the coordinator and print its id",
		Long: `trigger queues a build of a repository's commit and prints the build's id.
--repo is a registered repository's name (monkeyci repos add), a clone URL,
a file:// URL or a local path; a plain local path is made absolute here, and
is read on the agent's machine.

--tag builds a tag as a tag push does: its commit (unless --commit says
which), with the tag in the build's facts (when: {tag: GLOB} and
monkeyci param get tag).

--priority high sends the build before the queued builds of a lower
priority, whichever their repository (its repository's --max-running still
holds); the default is the repository's priority, normal unless set.

With --wait it follows the build's output (each line prefixed with its job)
until the build ends, prints how it ended and exits like monkeyci run:
0 the build succeeded, 1 it did not.`,
		Example: `  monkeyci trigger --repo https://github.com/me/app --branch main
  monkeyci trigger --repo me/app --tag v1.2.0
  monkeyci trigger --repo . --param env=staging --label os=linux --wait`,
		Args: cobra.NoArgs,
	}
	flags := addAdminFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&repo, "repo", "", "the repository: registered name, clone URL, file:// URL or local path (required)")
	f.StringVar(&branch, "branch", "", "the branch to build (default: the repository's HEAD)")
	f.StringVar(&commit, "commit", "", "the commit to build (default: the branch's head)")
	f.StringVar(&tag, "tag", "", "the tag to build (its commit, unless --commit is given)")
	f.StringArrayVar(&params, "param", nil, "a build parameter KEY=VALUE (repeatable)")
	f.StringArrayVar(&labels, "label", nil, "a label KEY=VALUE the agent must carry (repeatable)")
	f.StringVar(&priority, "priority", "", "high, normal or low: the order among queued builds (default: the repository's)")
	f.BoolVar(&wait, "wait", false, "follow the build until it ends; exit 0 if it succeeded, 1 if not")
	_ = cmd.MarkFlagDirname("repo")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		url, err := admin.ResolveRepo(repo)
		if err != nil {
			return usageError(err)
		}
		p, err := admin.ParseKV("--param", params)
		if err != nil {
			return usageError(err)
		}
		l, err := admin.ParseKV("--label", labels)
		if err != nil {
			return usageError(err)
		}
		if _, err := coordinator.ParsePriority(priority); err != nil {
			return usageError(err)
		}
		c, err := flags.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, cancel := callContext(cmd)
		b, err := c.Trigger(ctx, &fleet.TriggerRequest{Url: url, Repo: admin.RepoName(repo), Branch: branch, Commit: commit, Tag: tag, Params: p, Labels: l, Priority: priority})
		cancel()
		if err != nil {
			return adminFailed(c, err)
		}
		fmt.Fprintln(stdout, b.GetId())
		if !wait {
			return nil
		}
		return followBuild(cmd, c, b.GetId(), stdout, stderr)
	}
	return cmd
}

// followBuild prints a build's output until it ends, then how it ended;
// like monkeyci run, it fails with exit code 1 unless the build succeeded.
func followBuild(cmd *cobra.Command, c *admin.Client, id string, stdout, stderr io.Writer) error {
	fctx, stop := followContext(cmd)
	defer stop()
	end, err := admin.Logs(fctx, c, admin.LogOptions{Build: id, Follow: true, Poll: logsPoll, Notes: stderr}, stdout)
	switch {
	case err != nil && fctx.Err() != nil && cmdContext(cmd).Err() == nil:
		return failedError(fmt.Errorf("interrupted: build %s goes on (monkeyci builds cancel %s stops it)", id, id))
	case err != nil:
		return adminFailed(c, err)
	}
	fmt.Fprintln(stdout, admin.ResultLine(end))
	if end.GetResult() != string(events.Success) {
		return &exitError{code: exitFailed}
	}
	return nil
}
