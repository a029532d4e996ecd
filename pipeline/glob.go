package pipeline

import (
	"fmt"
	"path"
	"strings"
)

// Globs, as `when` takes them for branches, tags and changed files:
//
//   - they match a whole slash-separated name ("docs/intro.md",
//     "feature/login", "v1.2.0"), anchored at its start: "*.md" matches
//     "README.md" but not "docs/intro.md";
//   - within one segment (between slashes), path.Match's syntax: '*' any
//     run of characters but '/', '?' one character but '/', "[a-z]" and
//     "[^0-9]" classes, '\' escapes the next character;
//   - a segment that is exactly "**" matches any number of segments, none
//     included: "docs/**" matches "docs/a.md" and "docs/x/y/b.md",
//     "**/*.go" any .go file, "a/**/b" "a/b" and "a/x/y/b";
//   - a pattern ending in '/' means everything under that directory:
//     "docs/" is "docs/**".
//
// A leading '/' is allowed and changes nothing: every pattern is anchored.

// checkGlob says what is wrong with a pattern, or nil.
func checkGlob(pattern string) error {
	if strings.TrimSpace(pattern) == "" {
		return fmt.Errorf("must not be empty")
	}
	for _, seg := range globSegments(pattern) {
		if seg == "**" {
			continue
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("invalid pattern %q: %w", pattern, err)
		}
	}
	return nil
}

// globSegments splits a pattern into the segments it matches, applying the
// leading and trailing '/' rules.
func globSegments(pattern string) []string {
	pattern = strings.TrimPrefix(pattern, "/")
	if strings.HasSuffix(pattern, "/") {
		pattern += "**"
	}
	return strings.Split(pattern, "/")
}

// matchGlob reports whether name matches pattern; an invalid pattern
// matches nothing (Validate refuses it first).
func matchGlob(pattern, name string) bool {
	return matchSegments(globSegments(pattern), strings.Split(name, "/"))
}

// matchSegments matches segment by segment, from the end: ok[i][j] says
// whether pat[i:] matches name[j:]. A table rather than backtracking keeps
// a pattern with many "**" linear in what it is matched against.
func matchSegments(pat, name []string) bool {
	ok := make([][]bool, len(pat)+1)
	for i := range ok {
		ok[i] = make([]bool, len(name)+1)
	}
	ok[len(pat)][len(name)] = true
	for i := len(pat) - 1; i >= 0; i-- {
		for j := len(name); j >= 0; j-- {
			if pat[i] == "**" {
				// None of the names left, or one more and still "**".
				ok[i][j] = ok[i+1][j] || (j < len(name) && ok[i][j+1])
				continue
			}
			if j < len(name) && ok[i+1][j+1] {
				m, err := path.Match(pat[i], name[j])
				ok[i][j] = err == nil && m
			}
		}
	}
	return ok[0][0]
}
