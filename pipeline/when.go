package pipeline

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// When says on which builds a job runs:
//
//	when:
//	  branch: main            # the build's branch matches this glob
//	  tag: "v*"               # the build's tag matches this glob
//	  changed: [docs/**, "*.md"]  # a file the commit changed matches one
//
// Every condition given must hold; a job whose conditions do not is
// skipped, and so are the jobs that depend on it. A build of a tag has no
// branch, so "branch" never holds for it, nor "tag" for a build of a
// branch. When the changed files are unknown (the commit's parent could not
// be read), "changed" holds: building too much is safer than too little.
// The globs are described in glob.go.
type When struct {
	Branch  string   `json:"branch,omitempty"`
	Tag     string   `json:"tag,omitempty"`
	Changed []string `json:"changed,omitempty"`
}

var whenKeys = []string{"branch", "tag", "changed"}

// Holds says whether a job with these conditions runs in a build with
// facts f, and when it does not, why not, for the skip's reason.
func (w *When) Holds(f Facts) (bool, string) {
	if w == nil {
		return true, ""
	}
	if w.Branch != "" {
		switch {
		case f.Branch == "":
			return false, fmt.Sprintf("when: branch %q, but the build is of no branch%s", w.Branch, tagNote(f))
		case !matchGlob(w.Branch, f.Branch):
			return false, fmt.Sprintf("when: branch %q does not match %q", f.Branch, w.Branch)
		}
	}
	if w.Tag != "" {
		switch {
		case f.Tag == "":
			return false, fmt.Sprintf("when: tag %q, but the build is of no tag", w.Tag)
		case !matchGlob(w.Tag, f.Tag):
			return false, fmt.Sprintf("when: tag %q does not match %q", f.Tag, w.Tag)
		}
	}
	if len(w.Changed) > 0 && f.ChangedKnown && !anyChanged(w.Changed, f.Changed) {
		quoted := make([]string, len(w.Changed))
		for i, g := range w.Changed {
			quoted[i] = strconv.Quote(g)
		}
		return false, "when: no changed file matches " + strings.Join(quoted, " or ")
	}
	return true, ""
}

func tagNote(f Facts) string {
	if f.Tag != "" {
		return fmt.Sprintf(" (it is of tag %q)", f.Tag)
	}
	return ""
}

// anyChanged says whether a file matches a glob. The globs are split once,
// not once a file: a change set may list thousands.
func anyChanged(globs, files []string) bool {
	pats := make([][]string, len(globs))
	for i, g := range globs {
		pats[i] = globSegments(g)
	}
	return slices.ContainsFunc(files, func(file string) bool {
		name := strings.Split(file, "/")
		return slices.ContainsFunc(pats, func(p []string) bool { return matchSegments(p, name) })
	})
}

// String renders the conditions for `monkeyci verify`.
func (w *When) String() string {
	var parts []string
	if w.Branch != "" {
		parts = append(parts, "branch "+w.Branch)
	}
	if w.Tag != "" {
		parts = append(parts, "tag "+w.Tag)
	}
	if len(w.Changed) > 0 {
		parts = append(parts, "changed "+strings.Join(w.Changed, ", "))
	}
	return strings.Join(parts, "; ")
}

// when decodes a job's `when` map. Key and value types are checked here,
// the globs themselves by checkWhen, which jobs built in code go through too.
func (d *jobDecoder) when(v *node) *When {
	if v.kind != kMap {
		d.errs.add(v.pos, "when: expected a map with branch, tag or changed, got %s", v.describe())
		return nil
	}
	w := &When{}
	seen := map[string]*node{}
	for i, k := range v.keys {
		name, ok := keyName(k)
		if !ok {
			d.errs.add(k.pos, "when: expected a key (a string or keyword), got %s", k.describe())
			continue
		}
		key := canonKey(name)
		if prev, dup := seen[key]; dup {
			d.errs.add(k.pos, "when: duplicate key %q (first at %d:%d)", name, prev.pos.Line, prev.pos.Column)
			continue
		}
		seen[key] = k
		val := v.vals[i]
		d.job.Pos["when."+key] = val.pos
		switch key {
		case "branch":
			w.Branch, _ = d.str("when.branch", val)
		case "tag":
			w.Tag, _ = d.str("when.tag", val)
		case "changed":
			w.Changed = d.strList("when.changed", val, false)
			d.itemPositions("when.changed", val)
		default:
			delete(d.job.Pos, "when."+key)
			hint := suggest(name, whenKeys, nil)
			if hint == "" {
				hint = ", expected branch, tag or changed"
			}
			d.errs.add(k.pos, "when: unknown key %q%s", name, hint)
		}
	}
	if len(seen) == 0 {
		d.errs.add(v.pos, "when: expected at least one of branch, tag or changed, got an empty map")
	}
	return w
}

// checkWhen checks the globs of a job's conditions.
func checkWhen(j *Job, add func(key, format string, args ...any)) {
	w := j.When
	if w == nil {
		return
	}
	for _, c := range []struct{ key, glob string }{{"branch", w.Branch}, {"tag", w.Tag}} {
		if _, given := j.Pos["when."+c.key]; !given && c.glob == "" {
			continue
		}
		if err := checkGlob(c.glob); err != nil {
			add("when."+c.key, "when.%s: %v, expected a glob like %s", c.key, err, globExample(c.key))
		}
	}
	if _, given := j.Pos["when.changed"]; given && len(w.Changed) == 0 {
		add("when.changed", "when.changed: expected at least one glob, like \"docs/**\"")
	}
	for i, g := range w.Changed {
		if err := checkGlob(g); err != nil {
			add("when.changed."+strconv.Itoa(i), "when.changed[%d]: %v, expected a glob like \"docs/**\" or \"**/*.go\"", i, err)
		}
	}
}

func globExample(key string) string {
	if key == "tag" {
		return `"v*" or "release-*"`
	}
	return `"main" or "release/*"`
}
