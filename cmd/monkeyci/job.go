package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/coordinator"
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
	cmd.AddCommand(newJobRunCommand(), newJobWaitCommand(stderr), newJobStatusCommand(stdout), newJobActionCommand(),
		newJobStopCommand(), newJobAddrCommand(stdout))
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
	expose                          []int
	arch                            string
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
queued; wait for it with monkeyci job wait.

With --expose the job is a service: it serves the ports to the build's other
jobs, which reach it by its id as a host name (db:5432). Jobs that --dep on
it start once every port accepts connections. run returns once they do (or
with --detach at once), and exits 1 if it ended first; the service runs
until monkeyci job stop, or the end of the script, and then counts as a
success unless it failed before.`,
		Example: `  monkeyci job run test --image golang:1.26 -- 'go test ./...'
  monkeyci job run a --image busybox --detach -- 'make a'
  monkeyci job run pkg --image busybox --dep a --save-artifact bin:out/ -- 'make pkg'
  monkeyci job run db --image postgres:17 --expose 5432 --detach`,
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
				if len(job.Expose) > 0 {
					// A service ends only when stopped: wait for it to serve.
					if err := ci.StartJob(ctx, job); err != nil {
						return err
					}
					for _, port := range job.Expose {
						if _, err := ci.Addr(ctx, job.ID, port); err != nil {
							return err
						}
					}
					return nil
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
	fl.StringArrayVar(&f.restoreArtifacts, "restore-artifact", nil, "restore artifact ID into PATH before the job: ID:PATH, or BUILD:ID:PATH for one an earlier build of the repository saved (BUILD its whole id; repeatable)")
	fl.StringArrayVar(&f.caches, "cache", nil, "keep PATH across builds of the repository as cache ID: ID:PATH (repeatable)")
	fl.Float64Var(&f.cpus, "cpus", 0, "CPUs the job needs, like 2 or 0.25 (default 1)")
	fl.Int64Var(&f.pids, "pids", 0, "the most processes the job's container may have (default: the agent's --pids)")
	fl.StringVar(&f.memory, "memory", "", "memory the job needs, like 512m or 4g; a bare number is GB, as in build files (default 2g)")
	fl.StringVar(&f.workDir, "work-dir", "", "the job's working directory, relative to the workspace")
	fl.StringVar(&f.shell, "shell", "", "the shell that runs each line (default sh)")
	fl.DurationVar(&f.timeout, "timeout", 0, "how long the job may run, like 10m (default 20m)")
	fl.BoolVar(&f.detach, "detach", false, "return once the job is queued")
	fl.IntSliceVar(&f.expose, "expose", nil, "a port the job serves to the build's other jobs, making it a service (repeatable)")
	fl.StringVar(&f.arch, "arch", "", `the machine architecture the image needs: "amd" or "arm" (default: the agent's)`)
	return cmd
}

// job is the job the flags describe.
func (f jobRunFlags) job(id string, lines []string) (sdk.Job, error) {
	j := sdk.Job{ID: id, Image: f.image, Script: lines, Deps: f.deps, CPUs: f.cpus, Pids: f.pids, WorkDir: f.workDir, Shell: f.shell, Timeout: f.timeout,
		Expose: f.expose, Arch: f.arch}
	if f.image == "" {
		return j, errRequired("--image")
	}
	if f.cpus < 0 || math.IsNaN(f.cpus) {
		return j, fmt.Errorf("--cpus %g: expected a number of CPUs above 0, like 1 or 0.25", f.cpus)
	}
	if f.pids < 0 {
		return j, fmt.Errorf("--pids %d: expected a number of processes of at least 1", f.pids)
	}
	for _, p := range f.expose {
		if p < 1 || p > 65535 {
			return j, fmt.Errorf("--expose %d: expected a port from 1 to 65535", p)
		}
	}
	if f.arch != "" && f.arch != pipeline.ArchAMD && f.arch != pipeline.ArchARM {
		return j, fmt.Errorf("--arch %q: expected \"amd\" or \"arm\"", f.arch)
	}
	if f.timeout < 0 {
		return j, fmt.Errorf("--timeout %s: expected a duration above 0, like 10m", f.timeout)
	}
	var err error
	if j.Env, err = admin.ParseKV("--env", f.env); err != nil {
		return j, err
	}
	if j.SaveArtifacts, err = parseArtifacts("--save-artifact", f.saveArtifacts, false); err != nil {
		return j, err
	}
	if j.RestoreArtifacts, err = parseArtifacts("--restore-artifact", f.restoreArtifacts, true); err != nil {
		return j, err
	}
	if j.Caches, err = parseArtifacts("--cache", f.caches, false); err != nil {
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

// parseArtifacts reads ID:PATH flags (the path may hold colons itself),
// and, with fromBuild, BUILD:ID:PATH: an earlier build's artifact, BUILD
// being its whole id (24 hex digits, what tells it from an ID).
func parseArtifacts(flag string, specs []string, fromBuild bool) ([]sdk.Artifact, error) {
	var out []sdk.Artifact
	for _, s := range specs {
		var build string
		if first, rest, ok := strings.Cut(s, ":"); fromBuild && ok && coordinator.IsBuildID(first) && strings.Contains(rest, ":") {
			build, s = first, rest
		}
		id, path, ok := strings.Cut(s, ":")
		if !ok || id == "" || path == "" {
			want := "ID:PATH, like bin:target/"
			if fromBuild {
				want += ", or BUILD:ID:PATH for an earlier build's"
			}
			return nil, fmt.Errorf("%s %q: expected %s", flag, s, want)
		}
		out = append(out, sdk.Artifact{ID: id, Path: path, Build: build})
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

func newJobStopCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stop ID...",
		Short: "Stop services the script started",
		Long: `stop stops each given service (a job run with --expose): it ends as a
success unless it failed before. A build's declarative jobs need no stop:
a service is stopped once every job that depends on it has ended.`,
		Example: `  monkeyci job stop db`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(cmd, func(ctx context.Context, ci *sdk.Client) error {
				for _, id := range args {
					if err := ci.Stop(ctx, id); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}

func newJobAddrCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "addr ID PORT",
		Short: "Print the address the build's jobs reach a service at",
		Long: `addr waits until service ID accepts connections on PORT (the script is
frozen meanwhile) and prints the address the build's jobs reach it at,
HOST:PORT: the job's id is its host name on the build's network. It exits 1
when the service ended before it accepted connections. The script itself has
no network: pass the address to the jobs that use it.`,
		Example: `  monkeyci job run db --image postgres:17 --expose 5432 --detach
  db=$(monkeyci job addr db 5432)
  monkeyci job run it --image golang:1.26 --dep db --env DB=postgres://$db/app -- 'go test ./...'`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			port, err := strconv.Atoi(args[1])
			if err != nil || port < 1 || port > 65535 {
				return usageError(fmt.Errorf("PORT %q: expected a port from 1 to 65535", args[1]))
			}
			return withClient(cmd, func(ctx context.Context, ci *sdk.Client) error {
				addr, err := ci.Addr(ctx, args[0], port)
				if err != nil {
					return err
				}
				fmt.Fprintln(stdout, addr)
				return nil
			})
		},
	}
}

func newJobStatusCommand(stdout io.Writer) *cobra.Command {
	var output *outputFlag
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
			return withClient(cmd, func(ctx context.Context, ci *sdk.Client) error {
				sts, err := ci.Status(ctx, args...)
				if err != nil {
					return err
				}
				return output.print(stdout, statusesJSON(sts), func(w io.Writer) error { return writeStatusTable(w, sts) })
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
	Expose     []int    `json:"expose,omitempty"`
}

// statusesJSON are jobs' states in -o json: empty, never nil, when sts is.
func statusesJSON(sts []sdk.Status) []statusJSON {
	out := make([]statusJSON, 0, len(sts))
	for _, s := range sts {
		j := statusJSON{ID: s.ID, State: string(s.State), Message: s.Message, Deps: s.Deps, DurationMS: s.Duration.Milliseconds(), Action: s.Action, Expose: s.Expose}
		if j.Deps == nil {
			j.Deps = []string{}
		}
		if ended(s.State) {
			j.Exit = &s.Exit
		}
		out = append(out, j)
	}
	return out
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
