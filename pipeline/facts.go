package pipeline

import (
	"maps"
	"strings"
)

// Facts are what a build knows of the source it builds: what `when`
// conditions are judged on, and what a build script reads as parameters.
type Facts struct {
	Branch string // empty for a build of a tag or of a bare commit
	Tag    string // empty unless the build is of a tag
	Commit string // full object name; empty when not a git commit
	// Changed are the paths (slash-separated, from the repository's root)
	// that the commit changed relative to its first parent; every file of
	// a root commit. They mean something only when ChangedKnown: a commit
	// whose parent was not fetched has unknown changes.
	Changed      []string
	ChangedKnown bool
}

// The parameters that carry facts to a build script (`monkeyci param get
// branch`). They win over a build parameter of the same name.
const (
	ParamBranch  = "branch"
	ParamTag     = "tag"
	ParamCommit  = "commit"
	ParamChanged = "changed" // one path per line; absent when unknown
)

// maxChangedBytes bounds the changed files a build script is told: past
// it (a huge merge) they count as unknown, so that `when: changed` holds
// and the job API's answer stays far below gRPC's 4 MB message limit.
const maxChangedBytes = 512 << 10

// Params are f as parameters. A path with a line break cannot be told one
// per line: then, and past maxChangedBytes, the changes are left out as
// unknown.
func (f Facts) Params() map[string]string {
	p := map[string]string{ParamBranch: f.Branch, ParamTag: f.Tag, ParamCommit: f.Commit}
	if !f.ChangedKnown {
		return p
	}
	size := 0
	for _, c := range f.Changed {
		size += len(c) + 1
		if size > maxChangedBytes || strings.ContainsAny(c, "\n\r") {
			return p
		}
	}
	p[ParamChanged] = strings.Join(f.Changed, "\n")
	return p
}

// WithFacts returns params with f's parameters added over them: facts are
// what `when` is judged on, so a build parameter named like one (a common
// --param tag=latest) must not decide which jobs run. A changed list too
// large to pass stays out, and so does a parameter named changed then.
func WithFacts(params map[string]string, f Facts) map[string]string {
	out := maps.Clone(params)
	if out == nil {
		out = map[string]string{}
	}
	delete(out, ParamChanged)
	maps.Copy(out, f.Params())
	return out
}

// FactsFromParams reads the facts back from a build's parameters.
func FactsFromParams(p map[string]string) Facts {
	f := Facts{Branch: p[ParamBranch], Tag: p[ParamTag], Commit: p[ParamCommit]}
	if changed, ok := p[ParamChanged]; ok {
		f.ChangedKnown = true
		if changed != "" {
			f.Changed = strings.Split(changed, "\n")
		}
	}
	return f
}
