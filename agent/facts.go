package agent

import "github.com/monkeyci/monkeyci/pipeline"

// params are what the script reads with GetParams: the build's parameters
// and, over them, its facts (branch, tag, commit, changed): the facts are
// what conditions are judged on, whatever a parameter says. The job API
// answers only once the source is fetched (waitSource), so Fetch has
// filled the facts in by then.
func (s *BuildSpec) params() map[string]string {
	if s.Facts == nil {
		return s.Params
	}
	return pipeline.WithFacts(s.Params, *s.Facts)
}
