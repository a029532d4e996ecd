// Command ci is the build script of the go-script example, written in Go
// with the job API's SDK. Built statically into .monkeyci/build, it runs in
// the agent's own minimal image: no script.yaml, no shell needed.
package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	monkeyci "github.com/monkeyci/monkeyci/sdk"
)

const image = "monkeyci/busybox:latest"

func main() {
	if err := build(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
}

// build runs two jobs in parallel, counts the workspace's files itself (an
// action, shown as a job of its own), then packages. The context has no
// deadline: the agent freezes this program while it waits, and a deadline
// would fire when it thaws.
func build(ctx context.Context) error {
	ci, err := monkeyci.Connect(ctx)
	if err != nil {
		return err
	}
	defer ci.Close()

	for _, j := range []monkeyci.Job{
		{ID: "lint", Image: image, Script: []string{"grep -q world hello.txt"}},
		{ID: "test", Image: image, Script: []string{"test -s hello.txt"}},
	} {
		if err := ci.StartJob(ctx, j); err != nil {
			return err
		}
	}
	results, err := ci.Wait(ctx, "lint", "test")
	if err != nil {
		return err
	}
	for _, r := range results {
		if err := r.Err(); err != nil {
			return err
		}
	}

	counted, err := ci.Action(ctx, "count", nil, func(ctx context.Context, stdout, stderr io.Writer) error {
		n := 0
		err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				n++
			}
			return err
		})
		fmt.Fprintf(stdout, "%d files in the workspace\n", n)
		return err
	})
	if err != nil {
		return err
	}
	if err := counted.Err(); err != nil {
		return err
	}

	greeting, ok, err := ci.Param(ctx, "greeting")
	if err != nil {
		return err
	}
	if !ok {
		greeting = "hello"
	}
	res, err := ci.Run(ctx, monkeyci.Job{
		ID: "package", Image: image, Deps: []string{"lint", "test"},
		Env:           map[string]string{"GREETING": greeting},
		Script:        []string{"mkdir -p dist", `echo "$GREETING" > dist/greeting.txt`, "cat dist/greeting.txt"},
		SaveArtifacts: []monkeyci.Artifact{{ID: "greeting", Path: "dist"}},
	})
	if err != nil {
		return err
	}
	return res.Err()
}
