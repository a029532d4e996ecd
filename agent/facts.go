package agent

import "github.com/monkeyci/monkeyci/pipeline"

// params are what the script reads with GetParams: the build's parameters
// and, over them, its facts (branch, tag, commit, changed): the facts are
// what conditions are judged on, whatever a parameter says. Made once,
// when the source is fetched (Fetch fills the facts in); the job API
// answers only after that (waitSource).
func (s *BuildSpec) params() map[string]string {
	if s.Facts == nil {
		return s.Params
	}
	return pipeline.WithFacts(s.Params, *s.Facts)
}
