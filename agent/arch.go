package agent

import (
	"fmt"

	"github.com/monkeyci/monkeyci/pipeline"
)

// LabelArch is the agent label that says the machine architecture of the
// jobs it runs ("amd", "arm"): a build whose jobs need another one goes to
// an agent with that label.
const LabelArch = "arch"

// NeedsAgentError ends a build this agent cannot run: its jobs need an agent
// with Labels. A coordinator sends the build to such an agent instead.
type NeedsAgentError struct {
	Labels map[string]string
	Reason string
}

func (e *NeedsAgentError) Error() string { return e.Reason }

// require checks that this agent runs jobs of each arch; when it does not,
// the build ends, handed back: another agent must run all of it.
func (b *build) require(archs []string) error {
	own := b.r.cfg.Arch
	for _, a := range archs {
		if a == "" || a == own {
			continue
		}
		if a != pipeline.ArchAMD && a != pipeline.ArchARM {
			return fmt.Errorf("unknown architecture %q, expected %q or %q", a, pipeline.ArchAMD, pipeline.ArchARM)
		}
		err := &NeedsAgentError{
			Labels: map[string]string{LabelArch: a},
			Reason: fmt.Sprintf("the build has jobs for %s machines, and this agent runs %s ones", a, own),
		}
		b.cancel(err)
		return err
	}
	return nil
}
