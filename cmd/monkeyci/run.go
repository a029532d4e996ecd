package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/docker"
	"github.com/monkeyci/monkeyci/console"
	"github.com/monkeyci/monkeyci/events"
)

// runConfig is everything `monkeyci run` is told.
type runConfig struct {
	dir      string
	json     bool
	pause    bool
	params   []string
	cpus     float64
	memory   string
	stateDir string
	logLevel *logFlag
}

func newRunCommand(stdout, stderr io.Writer) *cobra.Command {
	cfg := runConfig{pause: true}
	cmd := &cobra.Command{
		Use:   "run [DIR]",
		Short: "Run the build of a repository's working tree on the local Docker engine",
		Long: `run builds DIR (default: the current directory) as it is now, uncommitted
changes included and without what .gitignore ignores. The working tree is
copied into a workspace volume, a script container drives the jobs of
.monkeyci/build.{yaml,yml,json,edn} or runs the build script
(.monkeyci/build or build.sh, in the image .monkeyci/script.yaml names), and
each job runs in its own container.
The script container is paused while it waits for its jobs.

Exit codes: 0 the build succeeded, 1 it failed (or could not run),
2 bad input or usage. Ctrl-C cancels the build and removes every container
and volume it made.`,
		Example: `  monkeyci run examples/hello
  monkeyci run --json --param env=staging .
  monkeyci run --pause=false --cpus 4 --memory 8g`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.dir = dirArg(args)
			return runBuild(cmd.Context(), cfg, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cfg.json, "json", false, "print one JSON event per line instead of progress")
	f.BoolVar(&cfg.pause, "pause", true, "pause the script container while it awaits its jobs")
	f.StringArrayVar(&cfg.params, "param", nil, "a build parameter KEY=VALUE (repeatable)")
	f.Float64Var(&cfg.cpus, "cpus", float64(runtime.NumCPU()), "CPUs the build may use")
	f.StringVar(&cfg.memory, "memory", "", "memory the build may use, like 8g (default: the machine's)")
	f.StringVar(&cfg.stateDir, "state-dir", "", "where build files and caches are kept (default: the user cache dir)")
	cfg.logLevel = addLogFlag(f)
	return cmd
}

func runBuild(ctx context.Context, cfg runConfig, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dir, err := filepath.Abs(cfg.dir)
	if err != nil {
		return usageError(err)
	}
	if _, err := checkBuild(dir); err != nil {
		return usageError(err)
	}
	params, err := admin.ParseKV("--param", cfg.params)
	if err != nil {
		return usageError(err)
	}
	capacity, err := capacityOf(cfg.cpus, cfg.memory)
	if err != nil {
		return usageError(err)
	}
	stateDir, err := stateDirOf(cfg.stateDir)
	if err != nil {
		return usageError(err)
	}
	log := cfg.logLevel.newLogger("monkeyci", stderr)
	engine, err := docker.New(log.Named("docker"))
	if err != nil {
		return failedError(fmt.Errorf("docker: %w", err))
	}
	defer engine.Close()
	if err := engine.Ping(ctx); err != nil {
		return failedError(fmt.Errorf("the Docker engine does not answer (is it running?): %w", err))
	}
	runner, err := agent.NewRunner(agent.Config{
		Runtime:  engine,
		Ledger:   agent.NewLedger(capacity),
		Logger:   log,
		StateDir: stateDir,
		CacheDir: filepath.Join(stateDir, "caches"),
		Pause:    cfg.pause,
		// Its own id: what its builds make (containers, volumes, networks)
		// is its own, and goes when it ends.
		AgentID: fmt.Sprintf("run-%d", os.Getpid()),
	})
	if err != nil {
		return failedError(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = runner.Close(ctx)
	}()

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	finished := make(chan struct{})
	defer close(finished) // runs before stop: not a cancel
	go func() {
		// After the first signal the build cleans up; a second one ends
		// the program at once, as the user asks.
		select {
		case <-ctx.Done():
		case <-finished:
			return
		}
		stop()
		if !cfg.json {
			fmt.Fprintln(stderr, "monkeyci: canceling: removing the build's containers (press Ctrl-C again to quit at once)")
		}
	}()
	mode, columns := printerMode(cfg.json, stdout)
	printer := console.NewPrinter(stdout, mode)
	printer.SetColumns(columns)
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	go func() {
		for range ticker.C {
			printer.Tick()
		}
	}()
	facts := localFacts(ctx, dir, log)
	out, err := runner.Run(ctx, agent.BuildSpec{Repo: dir, Source: dir, Params: params, Facts: facts}, printer)
	ticker.Stop()
	printer.Summary(out)
	switch {
	case err != nil:
		return failedError(err)
	case out.Result != events.Success:
		return &exitError{code: exitFailed}
	}
	return nil
}

// printerMode is live progress on a terminal (and its width), plain lines
// elsewhere, or JSON when asked.
func printerMode(json bool, w io.Writer) (console.Mode, int) {
	if json {
		return console.JSON, 0
	}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
			return console.Live, int(ws.Col)
		}
		return console.Live, 0
	}
	return console.Plain, 0
}

func stateDirOf(dir string) (string, error) {
	if dir != "" {
		return filepath.Abs(dir)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", errors.New("no user cache directory: give --state-dir")
	}
	return filepath.Join(cache, "monkeyci"), nil
}

func errRequired(flag string) error { return fmt.Errorf("%s is required", flag) }
