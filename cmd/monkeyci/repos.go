package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func newReposCommand(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repos",
		Short: "Register the repositories whose webhooks build; list and remove them",
		Long: `repos registers the repositories that forges' webhooks may build, with the
secret their webhooks are signed with and a token for commit statuses.
A repository's build secrets are set with monkeyci secrets.`,
		Args: cobra.NoArgs,
	}
	flags := addAdminFlags(cmd)
	cmd.AddCommand(newReposAddCommand(flags, stdout, stderr), newReposLsCommand(flags, stdout), newReposRmCommand(flags, stdout))
	return cmd
}

// repoAddFlags is what `monkeyci repos add` is told, as written.
type repoAddFlags struct {
	url, webhookSecret, forge, apiURL, defaultBranch string
	priority                                         string
	branches                                         []string
	tokenStdin, webhookSecretStdin, sshKeyStdin      bool
	cancelSuperseded                                 bool
	buildTimeout                                     time.Duration
	depth, maxRunning                                int
}

func newReposAddCommand(flags *adminFlags, stdout, stderr io.Writer) *cobra.Command {
	var rf repoAddFlags
	add := &cobra.Command{
		Use:   "add NAME --url CLONE_URL",
		Short: "Register a repository, or change one's settings",
		Long: `add registers a repository under NAME (owner/name is usual) and prints it.
Adding a registered name again updates its settings and keeps its secrets;
a webhook secret or forge token not given again is kept too.

--url is what agents clone: a clone URL, a file:// URL or a local path (a
plain local path is made absolute here, and is read on the agent's machine).

A forge's webhook finds its repository by the forge's full name (owner/name)
or by its clone URL, so name the repository owner/name or give the URL the
forge knows. Point the forge's webhook at the coordinator's HTTP port:

  POST http(s)://COORDINATOR_HTTP/webhooks/github
  POST http(s)://COORDINATOR_HTTP/webhooks/gitlab
  POST http(s)://COORDINATOR_HTTP/webhooks/gitea      (Gitea and Forgejo)
  POST http(s)://COORDINATOR_HTTP/webhooks/bitbucket

with --webhook-secret as the webhook's secret (--webhook-secret-stdin reads
it as one line of standard input, out of the shell's history and the
process list). Pushes build the branches matching --branches (all of them
when none is given). --forge-token-stdin reads an API token from standard
input (after the webhook secret's line, with both), used to set commit
statuses.

A credential in --url (https://user:token@host/...) is kept sealed, apart
from the URL: it is shown as *** and given only to the agent that fetches.
--ssh-key-stdin reads a deploy key (an SSH private key without a
passphrase) from standard input, for an ssh:// or user@host:path URL: it is
kept as the repository's secret MONKEYCI_SSH_KEY, given only to the
agent's fetch (its submodules too), never to a job. An agent trusts a
host's key the first time it fetches from it, and holds to it after.

--depth sets how many commits of history each build's checkout holds (0:
all of it); a build's .monkeyci/script.yaml may ask more with depth.

A push to a branch other than --default-branch, or to a pull request,
cancels the builds of that branch or pull request that earlier pushes
queued and that are still queued or running: they say which build
superseded them. Builds of the default branch and of tags, and builds
triggered by a person, are never canceled this way. --cancel-superseded=false
keeps them all running.

--max-running N lets at most N of the repository's builds run at once; the
others stay queued, saying they wait for the repository's limit. Queued
builds of different repositories are sent in turns, so a repository with
many builds queued does not hold back another's.

--build-timeout bounds how long one of its builds may run: past it the
build is canceled, its containers removed, and it says it timed out
(default: the coordinator's --build-timeout, 1h).`,
		Example: `  monkeyci repos add me/app --url https://github.com/me/app --webhook-secret "$SECRET" --branches 'main,release/*'
  printf %s "$GITLAB_TOKEN" | monkeyci repos add team/site --url https://gitlab.example.com/team/site.git \
      --forge gitlab --api-url https://gitlab.example.com --forge-token-stdin
  monkeyci repos add me/private --url git@github.com:me/private.git --ssh-key-stdin < deploy_key`,
		Args: cobra.ExactArgs(1),
	}
	out := addOutputFlag(add)
	f := add.Flags()
	f.StringVar(&rf.url, "url", "", "what agents clone: clone URL, file:// URL or local path (required)")
	f.StringVar(&rf.webhookSecret, "webhook-secret", "", "the secret the forge signs its webhooks with")
	f.BoolVar(&rf.webhookSecretStdin, "webhook-secret-stdin", false, "read the webhook secret as one line of standard input")
	f.StringSliceVar(&rf.branches, "branches", nil, "globs of the branches whose pushes build, comma-separated (default: all)")
	f.StringVar(&rf.forge, "forge", "", "the forge: github, gitlab, gitea or bitbucket (default: guessed from --url)")
	f.StringVar(&rf.defaultBranch, "default-branch", "main", "the branch whose caches a branch's first build may read")
	f.StringVar(&rf.apiURL, "api-url", "", "the forge's API URL, for a self-hosted forge (default: the public service's)")
	f.BoolVar(&rf.tokenStdin, "forge-token-stdin", false, "read the forge's API token (for commit statuses) from standard input")
	f.BoolVar(&rf.sshKeyStdin, "ssh-key-stdin", false, "read a deploy key (an SSH private key) for an ssh URL from standard input, all of it")
	f.BoolVar(&rf.cancelSuperseded, "cancel-superseded", true, "cancel a branch's or pull request's older builds when a newer push queues one")
	f.DurationVar(&rf.buildTimeout, "build-timeout", 0, "how long one of its builds may run before it is canceled, like 30m (default: the coordinator's, 1h)")
	f.StringVar(&rf.priority, "priority", "", "high, normal or low: the priority of its builds that ask for none (default: normal)")
	f.IntVar(&rf.maxRunning, "max-running", 0, "at most this many of the repository's builds run at once (default: any)")
	f.IntVar(&rf.depth, "depth", 20, "commits of history each build's checkout holds; 0 for all of it (default: the agent's, 20)")
	_ = add.RegisterFlagCompletionFunc("forge", cobra.FixedCompletions(admin.Forges, cobra.ShellCompDirectiveNoFileComp))
	add.RunE = func(cmd *cobra.Command, args []string) error {
		repo, err := rf.repo(args[0])
		if err != nil {
			return usageError(err)
		}
		if rf.maxRunning < 0 {
			return usageError(fmt.Errorf("--max-running %d: expected how many builds may run at once, like 2, or 0 for any", rf.maxRunning))
		}
		repo.MaxRunning = int32(rf.maxRunning)
		if _, err := coordinator.ParsePriority(rf.priority); err != nil {
			return usageError(err)
		}
		repo.Priority = rf.priority
		if rf.buildTimeout < 0 || rf.buildTimeout > 0 && rf.buildTimeout < time.Second {
			return usageError(fmt.Errorf("--build-timeout %s: expected how long a build may run, like 30m", rf.buildTimeout))
		}
		repo.BuildTimeoutSeconds = int64(rf.buildTimeout / time.Second)
		if cmd.Flags().Changed("depth") {
			if rf.depth < 0 {
				return usageError(fmt.Errorf("--depth %d: expected the commits of history to fetch, like 50, or 0 for all of it", rf.depth))
			}
			d := int32(rf.depth)
			repo.Depth = &d
		}
		if err := rf.readSecrets(cmd, stderr, repo); err != nil {
			return err
		}
		var key []byte
		if rf.sshKeyStdin {
			if key, err = readDeployKey(cmd); err != nil {
				return err
			}
		}
		r, err := adminCall(cmd, flags, fleet.AdminClient.AddRepo, repo)
		if err != nil {
			return err
		}
		if key != nil {
			set := &fleet.SetSecretRequest{Repo: r.GetName(), Key: coordinator.DeployKeySecret, Value: key}
			if _, err := adminCall(cmd, flags, fleet.AdminClient.SetSecret, set); err != nil {
				return fmt.Errorf("the repository is registered, but not its deploy key: %w", err)
			}
		}
		return out.print(stdout, admin.Repo(r), func(w io.Writer) error { return admin.ReposTable(w, []*fleet.Repo{r}) })
	}
	return add
}

// repo checks the flags and makes the repository they register as name
// (without what standard input holds).
func (rf *repoAddFlags) repo(name string) (*fleet.Repo, error) {
	if rf.url == "" {
		return nil, errors.New("--url is required: the repository's clone URL or local path")
	}
	cloneURL, err := admin.ResolveRepo(rf.url)
	if err != nil {
		return nil, err
	}
	if err := admin.CheckForge(rf.forge); err != nil {
		return nil, err
	}
	if rf.defaultBranch == "" || strings.ContainsFunc(rf.defaultBranch, unicode.IsSpace) {
		return nil, fmt.Errorf("--default-branch %q: expected a branch name like main", rf.defaultBranch)
	}
	for _, b := range rf.branches {
		if strings.TrimSpace(b) == "" {
			return nil, fmt.Errorf("--branches %q: a branch glob is empty", strings.Join(rf.branches, ","))
		}
	}
	if rf.webhookSecretStdin && rf.webhookSecret != "" {
		return nil, errors.New("give the webhook secret by --webhook-secret or by --webhook-secret-stdin, not both")
	}
	if rf.sshKeyStdin && (rf.webhookSecretStdin || rf.tokenStdin) {
		return nil, errors.New("--ssh-key-stdin reads all of standard input: give the webhook secret by --webhook-secret, and the forge token in another call")
	}
	return &fleet.Repo{Name: name, Url: cloneURL, WebhookSecret: rf.webhookSecret, Branches: rf.branches, Forge: rf.forge, ApiUrl: rf.apiURL, DefaultBranch: rf.defaultBranch,
		KeepSuperseded: !rf.cancelSuperseded}, nil
}

// readSecrets reads into repo the secrets the flags say standard input
// holds: the webhook secret's line, then the forge token.
func (rf *repoAddFlags) readSecrets(cmd *cobra.Command, stderr io.Writer, repo *fleet.Repo) error {
	in := bufio.NewReader(cmd.InOrStdin()) // one reader for both
	if rf.webhookSecretStdin {
		if isTerminal(cmd.InOrStdin()) {
			fmt.Fprint(stderr, "webhook secret: ")
		}
		v, err := admin.ReadSecretLine(in, "the webhook secret")
		if err != nil {
			return usageError(err)
		}
		repo.WebhookSecret = string(v)
	}
	if rf.tokenStdin {
		token, err := readSecretFrom(cmd, in, stderr, "forge token: ", "the forge token")
		if err != nil {
			return err
		}
		repo.ForgeToken = string(token)
	}
	return nil
}

func newReposLsCommand(flags *adminFlags, stdout io.Writer) *cobra.Command {
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the registered repositories",
		Long: `ls lists the registered repositories: name, URL, forge, the branches whose
pushes build (* all) and whether a webhook secret and a forge token are set.
Secrets are never shown.`,
		Args: cobra.NoArgs,
	}
	out := addOutputFlag(ls)
	ls.RunE = func(cmd *cobra.Command, _ []string) error {
		resp, err := adminCall(cmd, flags, fleet.AdminClient.ListRepos, &fleet.ListReposRequest{})
		if err != nil {
			return err
		}
		return out.print(stdout, admin.Repos(resp.GetRepos()), func(w io.Writer) error { return admin.ReposTable(w, resp.GetRepos()) })
	}
	return ls
}

func newReposRmCommand(flags *adminFlags, stdout io.Writer) *cobra.Command {
	rm := &cobra.Command{
		Use:               "rm NAME",
		Aliases:           []string{"remove"},
		Short:             "Remove a repository and its secrets",
		Long:              `rm removes a registered repository and all its secrets: its webhooks build no more. Its builds are kept.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: flags.completeRepos,
	}
	out := addOutputFlag(rm)
	rm.RunE = func(cmd *cobra.Command, args []string) error {
		r, err := adminCall(cmd, flags, fleet.AdminClient.RemoveRepo, &fleet.RepoRef{Name: args[0]})
		if err != nil {
			return err
		}
		return out.print(stdout, admin.Repo(r), line("removed repository %s (%s) and its secrets", r.GetName(), r.GetUrl()))
	}
	return rm
}

// readSecret reads a secret value from standard input: from a terminal
// one line after prompt on stderr, otherwise all of it; one trailing
// newline is dropped. An empty value is a usage error.
func readSecret(cmd *cobra.Command, stderr io.Writer, prompt, what string) ([]byte, error) {
	return readSecretFrom(cmd, cmd.InOrStdin(), stderr, prompt, what)
}

// readSecretFrom is readSecret from in, a reader of the command's input.
func readSecretFrom(cmd *cobra.Command, in io.Reader, stderr io.Writer, prompt, what string) ([]byte, error) {
	v, err := admin.ReadSecret(in, isTerminal(cmd.InOrStdin()), func() { fmt.Fprint(stderr, prompt) }, what)
	if err != nil {
		return nil, usageError(err)
	}
	return v, nil
}

// readDeployKey reads an SSH private key, all of standard input, and
// checks it: a usage error names what is wrong.
func readDeployKey(cmd *cobra.Command) ([]byte, error) {
	if isTerminal(cmd.InOrStdin()) {
		return nil, usageError(errors.New("--ssh-key-stdin: give the key file on standard input (< deploy_key)"))
	}
	key, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 64<<10))
	if err != nil {
		return nil, fmt.Errorf("reading the deploy key: %w", err)
	}
	if err := source.CheckSSHKey(string(key)); err != nil {
		return nil, usageError(fmt.Errorf("--ssh-key-stdin: %w", err))
	}
	return key, nil
}

// isTerminal says whether in is a terminal.
func isTerminal(in io.Reader) bool {
	f, ok := in.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// completeRepos offers the names of the registered repositories.
func (f *adminFlags) completeRepos(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return f.complete(cmd, func(ctx context.Context, c *admin.Client) ([]cobra.Completion, error) {
		resp, err := c.ListRepos(ctx, &fleet.ListReposRequest{})
		if err != nil {
			return nil, err
		}
		var out []cobra.Completion
		for _, r := range resp.GetRepos() {
			out = append(out, cobra.CompletionWithDesc(r.GetName(), r.GetUrl()))
		}
		return out, nil
	})
}
