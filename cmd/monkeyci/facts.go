package main

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent/source"
	"github.com/monkeyci/monkeyci/pipeline"
)

// localFacts are the facts of a working tree built as it is (monkeyci
// run): the branch and commit of its repository's HEAD, and as changed
// files what HEAD's commit changed plus what is not committed yet, so that
// `when: changed` runs the jobs that the change being made concerns (see
// source.WorkingTreeFacts). What cannot be read is left unknown, and then
// `when: changed` holds: a local run never fails for its facts.
func localFacts(ctx context.Context, dir string, log hclog.Logger) *pipeline.Facts {
	f, err := source.WorkingTreeFacts(ctx, dir)
	if err != nil {
		log.Warn("the working tree's changed files are unknown", "error", err)
		f.Changed, f.ChangedKnown = nil, false
	}
	return &f
}
