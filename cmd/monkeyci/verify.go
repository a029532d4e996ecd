package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/buildscript"
	"github.com/monkeyci/monkeyci/pipeline"
)

func newVerifyCommand(stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "verify [DIR]",
		Short: "Check a repository's build files and print its job graph",
		Long: `verify reads DIR/.monkeyci/build.{yaml,yml,json,edn} (DIR defaults to the
current directory), reports every problem as file:line:col, and prints the
job graph. For a build script (.monkeyci/build or build.sh) it checks
.monkeyci/script.yaml and says what will run. It exits 0 when the files are
valid and 2 when they are not.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			desc, err := checkBuild(dirArg(args))
			if err != nil {
				return usageError(err)
			}
			fmt.Fprint(stdout, desc)
			return nil
		},
	}
}

// checkBuild checks a repository's build, declarative or a script, and
// its script container's settings, and describes it.
func checkBuild(dir string) (string, error) {
	build, err := buildscript.Detect(dir)
	if err != nil {
		return "", err
	}
	cfg, err := buildscript.LoadConfig(dir)
	if err != nil {
		return "", err
	}
	if build.Kind == buildscript.Declarative {
		plan, err := pipeline.Load(dir)
		if err != nil {
			return "", err
		}
		return plan.Describe(), nil
	}
	image := "the agent's minimal image"
	if cfg.Image != "" {
		image = cfg.Image
	}
	desc := fmt.Sprintf("build script %s, run in %s", build.Script, image)
	if cfg.MilliCPUs > 0 {
		desc += fmt.Sprintf(", %g CPUs", float64(cfg.MilliCPUs)/1000)
	}
	if cfg.Memory > 0 {
		desc += ", " + agent.FormatBytes(cfg.Memory)
	}
	return desc + "\n", nil
}

func dirArg(args []string) string {
	if len(args) == 0 {
		return "."
	}
	return args[0]
}
