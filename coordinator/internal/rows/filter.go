package rows

import (
	"strings"

	"github.com/monkeyci/monkeyci/coordinator"
)

// BuildsMatching is the query of the builds f matches, newest first (by
// creation, then id), and its arguments; param(n) writes the nth
// argument's placeholder in the store's dialect.
func BuildsMatching(f coordinator.BuildFilter, param func(n int) string) (string, []any) {
	var (
		where []string
		args  []any
	)
	is := func(column string, value any) {
		args = append(args, value)
		where = append(where, column+" = "+param(len(args)))
	}
	if f.Repo != "" {
		is("repo", f.Repo)
	}
	switch {
	case f.Active:
		// As the partial index builds_active_branch says it.
		where = append(where, "state IN ('queued', 'running')")
	case f.State != "":
		is("state", string(f.State))
	}
	if f.Branch != "" {
		is("source_branch", f.Branch)
	}
	if f.PullRequest != 0 {
		is("pull_request", f.PullRequest)
	}
	q := `SELECT ` + BuildColumns + ` FROM builds`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created DESC, id DESC`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += ` LIMIT ` + param(len(args))
	}
	return q, args
}
