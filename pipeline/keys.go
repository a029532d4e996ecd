package pipeline

import (
	"fmt"
	"strings"
	"unicode"
)

// jobKeys are the keys a job accepts, kebab-case, in documentation order.
var jobKeys = []string{
	"id", "image", "script", "dependencies", "save-artifacts", "restore-artifacts",
	"caches", "size", "cpus", "memory", "pids", "env", "work-dir", "timeout", "shell",
	"entrypoint", "cmd", "labels", "blocked", "when",
	"type", "container/image", "arch", "expose", "credit-multiplier",
}

var artifactKeys = []string{"id", "path"}

// cacheKeys are the keys of a cache: an artifact's, and the files that key it.
var cacheKeys = []string{"id", "path", "key-files"}

// keyHints are names other CI systems use for our keys; edit distance would
// not find them.
var keyHints = map[string]string{
	"depends-on": "dependencies", "needs": "dependencies", "deps": "dependencies",
	"commands": "script", "steps": "script", "run": "script", "scripts": "script",
	"environment": "env", "variables": "env", "vars": "env",
	"container": "image", "working-dir": "work-dir", "workdir": "work-dir",
	"artifacts": "save-artifacts", "cache": "caches", "mem": "memory", "cpu": "cpus",
	"pids-limit": "pids", "processes": "pids", "max-processes": "pids",
	"ports": "expose", "services": "expose", "platform": "arch", "architecture": "arch",
	"name": "id", "if": "when", "only": "when", "rules": "when", "condition": "when",
}

// canonKey turns camelCase into kebab-case (saveArtifacts -> save-artifacts),
// so both spellings name one key.
func canonKey(k string) string {
	var b strings.Builder
	prev := rune(0)
	for _, r := range k {
		upper := unicode.IsUpper(r)
		if upper {
			if unicode.IsLower(prev) || unicode.IsDigit(prev) {
				b.WriteByte('-')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
		prev = r
		if upper {
			prev = 'A'
		}
	}
	return b.String()
}

// keyName is the name of a map key: a string or an EDN keyword.
func keyName(k *node) (string, bool) {
	switch k.kind {
	case kString, kKeyword:
		return k.text, true
	}
	return "", false
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to name,
// or "" when none is close.
func suggest(name string, candidates []string, hints map[string]string) string {
	norm := strings.ToLower(strings.ReplaceAll(canonKey(name), "_", "-"))
	if h, ok := hints[norm]; ok {
		return fmt.Sprintf(" (did you mean %q?)", h)
	}
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(norm, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := 1
	switch n := len([]rune(norm)); {
	case n > 8:
		limit = 3
	case n > 4:
		limit = 2
	}
	if best == "" || bestD > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal string alignment distance: Levenshtein where
// swapping two neighbours costs one, the commonest typo ("scirpt").
func editDistance(a, b string) int {
	x, y := []rune(a), []rune(b)
	if len(x) > 64 || len(y) > 64 {
		return 64 // far from any key; keeps the table small
	}
	d := make([][]int, len(x)+1)
	for i := range d {
		d[i] = make([]int, len(y)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(x); i++ {
		for j := 1; j <= len(y); j++ {
			cost := 1
			if x[i-1] == y[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && x[i-1] == y[j-2] && x[i-2] == y[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(x)][len(y)]
}
