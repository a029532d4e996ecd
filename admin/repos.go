package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// Forges are the forges a repository may name with --forge (forgejo is
// gitea).
var Forges = []string{"github", "gitlab", "gitea", "bitbucket"}

// CheckForge refuses a --forge the coordinator does not know ("" lets the
// coordinator guess it from the URL).
func CheckForge(f string) error {
	if f == "" || slices.Contains(Forges, f) || f == "forgejo" {
		return nil
	}
	return fmt.Errorf("--forge %q: say %s", f, strings.Join(Forges, ", "))
}

// MaxSecret is the largest secret value read from standard input.
const MaxSecret = 1 << 20

// ReadSecret reads a secret value from r. From a terminal (prompt is then
// called first) it is one line; otherwise all of r. One trailing newline
// is dropped; what says what is read, in errors. An empty value is an
// error.
func ReadSecret(r io.Reader, terminal bool, prompt func(), what string) ([]byte, error) {
	var v []byte
	if terminal {
		prompt()
		line, err := bufio.NewReader(io.LimitReader(r, MaxSecret+1)).ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading %s: %w", what, err)
		}
		v = line
	} else {
		all, err := io.ReadAll(io.LimitReader(r, MaxSecret+2)) // room for a newline
		if err != nil {
			return nil, fmt.Errorf("reading %s from standard input: %w", what, err)
		}
		v = all
	}
	v = TrimNewline(v)
	switch {
	case len(v) == 0:
		return nil, fmt.Errorf("%s is empty: give it on standard input", what)
	case len(v) > MaxSecret:
		return nil, fmt.Errorf("%s is larger than %d bytes", what, MaxSecret)
	}
	return v, nil
}

// ReadSecretLine reads a secret value as one line of r, its newline
// dropped, and leaves the rest of r unread; what says what is read, in
// errors. An empty value is an error.
func ReadSecretLine(r *bufio.Reader, what string) ([]byte, error) {
	var line []byte
	for len(line) <= MaxSecret+1 { // room for \r\n
		c, err := r.ReadByte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s from standard input: %w", what, err)
		}
		line = append(line, c)
		if c == '\n' {
			break
		}
	}
	v := TrimNewline(line)
	switch {
	case len(v) == 0:
		return nil, fmt.Errorf("%s is empty: give it as the first line of standard input", what)
	case len(v) > MaxSecret:
		return nil, fmt.Errorf("%s is larger than %d bytes", what, MaxSecret)
	}
	return v, nil
}

// TrimNewline drops one trailing newline (\n or \r\n).
func TrimNewline(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// RepoJSON is a registered repository in -o json. Its secrets are never
// shown: has_* says whether one is set.
type RepoJSON struct {
	Name             string     `json:"name"`
	URL              string     `json:"url"`
	Forge            string     `json:"forge"`
	APIURL           string     `json:"api_url"`
	Branches         []string   `json:"branches"`
	DefaultBranch    string     `json:"default_branch"`
	Depth            *int32     `json:"depth"` // null: the agent's default
	CancelSuperseded bool       `json:"cancel_superseded"`
	MaxRunning       int32      `json:"max_running"`           // 0: no bound
	BuildTimeout     int64      `json:"build_timeout_seconds"` // 0: the coordinator's
	Priority         string     `json:"priority"`
	HasWebhookSecret bool       `json:"has_webhook_secret"`
	HasForgeToken    bool       `json:"has_forge_token"`
	Created          *time.Time `json:"created"`
}

// Repo is r in -o json.
func Repo(r *fleet.Repo) RepoJSON {
	j := RepoJSON{
		Name: r.GetName(), URL: r.GetUrl(), Forge: r.GetForge(), APIURL: r.GetApiUrl(), Branches: r.GetBranches(), DefaultBranch: r.GetDefaultBranch(),
		HasWebhookSecret: r.GetHasWebhookSecret(), HasForgeToken: r.GetHasForgeToken(), Created: TimeOf(r.GetCreated()),
		Depth: r.Depth, CancelSuperseded: !r.GetKeepSuperseded(), MaxRunning: r.GetMaxRunning(), BuildTimeout: r.GetBuildTimeoutSeconds(), Priority: r.GetPriority(),
	}
	if j.Branches == nil {
		j.Branches = []string{}
	}
	return j
}

// Repos are repositories in -o json.
func Repos(rs []*fleet.Repo) []RepoJSON { return each(rs, Repo) }

// allBranches is the BRANCHES cell of a repository whose every branch
// builds.
const allBranches = "*"

// ReposTable writes repositories as a table: NAME URL FORGE BRANCHES
// WEBHOOK-SECRET FORGE-TOKEN, the last two yes or no.
func ReposTable(w io.Writer, rs []*fleet.Repo) error {
	tw := newTable(w)
	row(tw, "NAME", "URL", "FORGE", "BRANCHES", "WEBHOOK-SECRET", "FORGE-TOKEN")
	for _, r := range rs {
		branches := allBranches
		if len(r.GetBranches()) > 0 {
			branches = strings.Join(r.GetBranches(), ",")
		}
		row(tw, cell(r.GetName()), cell(r.GetUrl()), cell(r.GetForge()), branches,
			yesNo(r.GetHasWebhookSecret()), yesNo(r.GetHasForgeToken()))
	}
	return tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// SecretJSON is a secret in -o json: its name, never its value.
type SecretJSON struct {
	Repo    string     `json:"repo"`
	Key     string     `json:"key"`
	Updated *time.Time `json:"updated"`
}

// Secret is s in -o json.
func Secret(s *fleet.SecretInfo) SecretJSON {
	return SecretJSON{Repo: s.GetRepo(), Key: s.GetKey(), Updated: TimeOf(s.GetUpdated())}
}

// Secrets are secrets in -o json.
func Secrets(ss []*fleet.SecretInfo) []SecretJSON { return each(ss, Secret) }

// SecretsTable writes secrets as a table: KEY UPDATED, when in local time
// and how long ago as of now.
func SecretsTable(w io.Writer, ss []*fleet.SecretInfo, now time.Time) error {
	tw := newTable(w)
	row(tw, "KEY", "UPDATED")
	for _, s := range ss {
		row(tw, cell(s.GetKey()), stamp(s.GetUpdated(), now))
	}
	return tw.Flush()
}
