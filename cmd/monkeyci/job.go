package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/script"
	sdk "github.com/monkeyci/monkeyci/sdk"
)

// The job commands run inside a build's script container: a build script
// in any language drives its build with them. Each is a thin layer over the
// Go SDK (sdk/). Exit codes: 0 the job(s) succeeded, 1 a job did not (its
// message on stderr) or the agent refused, 2 bad usage.

func newJobCommand(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Start, wait for and look at the build's jobs (inside a build script)",
		Long: `job drives the build from a build script (.monkeyci/build or
.monkeyci/build.sh) through the job API named by MONKEYCI_API, with the
build's token in MONKEYCI_TOKEN. While the script only waits, the agent
freezes its container and lends its CPU to the jobs.`,
	}
	cmd.AddCommand(newJobRunCommand(), newJobWaitCommand(stderr), newJobStatusCommand(stdout), newJobActionCommand())
	return cmd
}

// jobRunFlags is what `monkeyci job run` is told, as written.
type jobRunFlags struct {
	image                           string
	deps, env                       []string
	saveArtifacts, restoreArtifacts []string
	caches                          []string
	cpus                            float64
	pids                            int64
	memory, workDir, shell          string
	timeout                         time.Duration
	detach                          bool
}

func newJobRunCommand() *cobra.Command {
	var f jobRunFlags
	cmd := &cobra.Command{
		Use:   "run ID --image IMAGE [flags] -- LINE...",
		Short: "Start a job and wait for its end",
		Long: `run starts job ID in a container of IMAGE, with the build's workspace at
/workspace. Each LINE runs in its own shell; the job stops at the first that
fails (without lines the image's own command runs). A job with --dep waits
for those jobs and is skipped when one of them did not succeed.

It waits for the job and exits 0 when it succeeded, 1 when it did not (with
the job's message on stderr). With --detach it returns once the job is
queued; wait for it with monkeyci job wait.`,
		Example: `  monkeyci job run test --image golang:1.26 -- 'go test ./...'
  monkeyci job run a --image busybox --detach -- 'make a'
  monkeyci job run pkg --image busybox --dep a --save-artifact bin:out/ -- 'make pkg'`,
		Args: jobArgs("ID", "LINE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			job, err := f.job(args[0], args[1:])
			if err != nil {
				return usageError(err)
			}
			return withClient(cmd, func(ctx context.Context, ci *sdk.Client) error {
				if f.detach {
					return ci.StartJob(ctx, job)
				}
				res, err := ci.Run(ctx, job)
				if err != nil {
					return err
				}
				return res.Err()
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.image, "image", "", "the job's container image (required)")
	fl.StringArrayVar(&f.deps, "dep", nil, "a job that must succeed first (repeatable)")
	fl.StringArrayVar(&f.env, "env", nil, "an environment variable KEY=VALUE (repeatable)")
	fl.StringArrayVar(&f.saveArtifacts, "save-artifact", nil, "save PATH after the job as artifact ID: ID:PATH (repeatable)")
	fl.StringArrayVar(&f.restoreArtifacts, "restore-artifact", nil, "restore artifact ID into PATH before the job: ID:PATH (repeatable)")
	fl.StringArrayVar(&f.caches, "cache", nil, "keep PATH across builds of the repository as cache ID: ID:PATH (repeatable)")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPUs the job needs, like 2 or 0.25 (default 1)")
	fl.Int64Var(&f.pids, "pids", 0, "the most processes the job's container may have (default: the agent's --pids)")
	fl.StringVar(&f.memory, "memory", "", "memory the job needs, like 512m or 4g; a bare number is GB, as in build files (default 2g)")
	fl.StringVar(&f.workDir, "work-dir", "", "the job's working directory, relative to the workspace")
	fl.StringVar(&f.shell, "shell", "", "the shell that runs each line (default sh)")
	fl.DurationVar(&f.timeout, "timeout", 0, "how long the job may run, like 10m (default 20m)")
	fl.BoolVar(&f.detach, "detach", false, "return once the job is queued")
	return cmd
}

// job is the job the flags describe.
func (f jobRunFlags) job(id string, lines []string) (sdk.Job, error) {
	j := sdk.Job{ID: id, Image: f.image, Script: lines, Deps: f.deps, CPUs: f.cpus, Pids: f.pids, WorkDir: f.workDir, Shell: f.shell, Timeout: f.timeout}
	if f.image == "" {
		return j, errRequired("--image")
	}
	if f.cpus < 0 || math.IsNaN(f.cpus) {
		return j, fmt.Errorf("--cpus %g: expected a number of CPUs above 0, like 1 or 0.25", f.cpus)
	}
	if f.pids < 0 {
		return j, fmt.Errorf("--pids %d: expected a number of processes of at least 1", f.pids)
	}
	if f.timeout < 0 {
		return j, fmt.Errorf("--timeout %s: expected a duration above 0, like 10m", f.timeout)
	}
	var err error
	if j.Env, err = admin.ParseKV("--env", f.env); err != nil {
		return j, err
	}
	if j.SaveArtifacts, err = parseArtifacts("--save-artifact", f.saveArtifacts); err != nil {
		return j, err
	}
	if j.RestoreArtifacts, err = parseArtifacts("--restore-artifact", f.restoreArtifacts); err != nil {
		return j, err
	}
	if j.Caches, err = parseArtifacts("--cache", f.caches); err != nil {
		return j, err
	}
	if f.memory != "" {
		m, err := pipeline.ParseMemory(f.memory)
		if err != nil {
			return j, fmt.Errorf("--memory: %v", err)
		}
		j.Memory = m
	}
	return j, nil
}

// parseArtifacts reads ID:PATH flags (the path may hold colons itself).
func parseArtifacts(flag string, specs []string) ([]sdk.Artifact, error) {
	var out []sdk.Artifact
	for _, s := range specs {
		id, path, ok := strings.Cut(s, ":")
		if !ok || id == "" || path == "" {
			return nil, fmt.Errorf("%s %q: expected ID:PATH, like bin:target/", flag, s)
		}
		out = append(out, sdk.Artifact{ID: id, Path: path})
	}
	return out, nil
}

// jobArgs takes one ID before "--" and what follows it.
func jobArgs(id, rest string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		dash := cmd.ArgsLenAtDash()
		switch {
		case len(args) == 0 || dash == 0:
			return fmt.Errorf("expected the %s first: %s", id, cmd.UseLine())
		case dash > 1 || dash < 0 && len(args) > 1:
			return fmt.Errorf("expected one %s, then -- and the %ss: %s", id, rest, cmd.UseLine())
		}
		return nil
	}
}

func newJobWaitCommand(stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "wait ID...",
		Short: "Wait until jobs have ended",
		Long: `wait waits until every given job has ended (the script is frozen meanwhile)
and exits 0 when all succeeded, 1 when one did not (each such job's message
on stderr).`,
		Example: `  monkeyci job wait a b`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, func(ctx context.Context, ci *sdk.Client) error {
				res, err := ci.Wait(ctx, args...)
				if err != nil {
					return err
				}
				var failed []string
				for _, r := range res {
					if err := r.Err(); err != nil {
						fmt.Fprintln(stderr, "monkeyci:", err)
						failed = append(failed, r.ID)
					}
				}
				if len(failed) > 0 {
					return &exitError{code: exitFailed}
				}
				return nil
			})
		},
	}
}

func newJobStatusCommand(stdout io.Writer) *cobra.Command {
	var output *string
	cmd := &cobra.Command{
		Use:   "status [ID...]",
		Short: "Say where jobs are, without waiting",
		Long: `status prints the state of the given jobs (of every job of the build
without ID): queued, running, success, failure, error, canceled or skipped,
with the exit code and message of an ended job, its dependencies and how
long it ran. -o json prints a JSON array, one object a job.`,
		Example: `  monkeyci job status
  monkeyci job status test -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(*output); err != nil {
				return err
			}
			return withClient(cmd, func(ctx context.Context, ci *sdk.Client) error {
				sts, err := ci.Status(ctx, args...)
				if err != nil {
					return err
				}
				if *output == admin.FormatJSON {
					return writeStatusJSON(stdout, sts)
				}
				return writeStatusTable(stdout, sts)
			})
		},
	}
	output = addOutputFlag(cmd)
	return cmd
}

// statusJSON is a job's state as `job status -o json` prints it.
type statusJSON struct {
	ID         string   `json:"id"`
	State      string   `json:"state"`
	Exit       *int     `json:"exit,omitempty"`
	Message    string   `json:"message,omitempty"`
	Deps       []string `json:"deps"`
	DurationMS int64    `json:"duration-ms"`
	Action     bool     `json:"action,omitempty"`
}

func writeStatusJSON(w io.Writer, sts []sdk.Status) error {
	out := make([]statusJSON, 0, len(sts))
	for _, s := range sts {
		j := statusJSON{ID: s.ID, State: string(s.State), Message: s.Message, Deps: s.Deps, DurationMS: s.Duration.Milliseconds(), Action: s.Action}
		if j.Deps == nil {
			j.Deps = []string{}
		}
		if ended(s.State) {
			j.Exit = &s.Exit
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func writeStatusTable(w io.Writer, sts []sdk.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATE\tEXIT\tDURATION\tDEPS\tMESSAGE")
	for _, s := range sts {
		exit := ""
		if ended(s.State) {
			exit = fmt.Sprint(s.Exit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, exit, s.Duration.Round(time.Millisecond), strings.Join(s.Deps, ","), s.Message)
	}
	return tw.Flush()
}

func ended(s sdk.State) bool { return s != sdk.Queued && s != sdk.Running }

func newJobActionCommand() *cobra.Command {
	var deps []string
	cmd := &cobra.Command{
		Use:   "action ID [--dep ID]... -- CMD [ARG...]",
		Short: "Run a command in the script container as a job of its own",
		Long: `action runs CMD in the script's own container and reports it as job ID:
the build shows its start, end and output like any job's. It waits for the
--dep jobs first, and is skipped when one of them did not succeed. It exits
0 when CMD succeeded and 1 when it did not (the job's message on stderr).`,
		Example: `  monkeyci job action lint -- ./lint.sh --strict`,
		Args:    jobArgs("ID", "CMD"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageError(fmt.Errorf("expected a command after --: %s", cmd.UseLine()))
			}
			return withClient(cmd, func(ctx context.Context, ci *sdk.Client) error {
				res, err := ci.Action(ctx, args[0], deps, func(ctx context.Context, stdout, stderr io.Writer) error {
					c := script.Command(ctx, args[1], args[2:]...)
					c.Stdout, c.Stderr = stdout, stderr
					return c.Run()
				})
				if err != nil {
					return err
				}
				return res.Err()
			})
		},
	}
	cmd.Flags().StringArrayVar(&deps, "dep", nil, "a job that must succeed first (repeatable)")
	return cmd
}

// withClient connects to the build's job API and runs f; f's errors are
// failures (exit 1), said in one line.
func withClient(cmd *cobra.Command, f func(ctx context.Context, ci *sdk.Client) error) error {
	ctx, stop := signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ci, err := sdk.Connect(ctx)
	if err != nil {
		return usageError(err)
	}
	defer ci.Close()
	err = f(ctx, ci)
	var ee *exitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return failedError(err)
}
