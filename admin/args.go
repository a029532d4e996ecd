package admin

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// scpLike matches git's user@host:path form (and host:path), which is a
// remote, not a local path.
var scpLike = regexp.MustCompile(`^([A-Za-z0-9._~-]+@)?[A-Za-z0-9.-]+:[^/\\]`)

// ResolveRepo turns --repo into what the coordinator is sent: URLs
// (scheme://... and git's user@host:path) as given, a plain local path made
// absolute. The path need not exist here: it is read on the agent's machine.
func ResolveRepo(repo string) (string, error) {
	if repo == "" {
		return "", fmt.Errorf("--repo is required")
	}
	if strings.Contains(repo, "://") {
		return repo, nil
	}
	if _, err := os.Stat(repo); err != nil && scpLike.MatchString(repo) {
		return repo, nil
	}
	abs, err := filepath.Abs(repo)
	if err != nil {
		return "", fmt.Errorf("--repo %q: %w", repo, err)
	}
	return abs, nil
}

// RepoName is --repo as a registered repository's name, which the
// coordinator prefers to the resolved path: "" for a URL or an existing
// local path, which cannot be meant as a name.
func RepoName(repo string) string {
	if strings.Contains(repo, "://") || scpLike.MatchString(repo) {
		return ""
	}
	if _, err := os.Stat(repo); err == nil {
		return ""
	}
	return repo
}

// ParseKV reads repeated KEY=VALUE flags into a map; flag names the flag in
// errors. Nil when there are none.
func ParseKV(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: expected KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

// Build states and token kinds the coordinator knows.
var (
	States     = []string{"queued", "running", "ended"}
	TokenKinds = []string{"agent", "admin", "viewer"}
)

// CheckState refuses a --state the coordinator does not know ("" is any).
func CheckState(s string) error {
	if s == "" || slices.Contains(States, s) {
		return nil
	}
	return fmt.Errorf("--state %q: say %s", s, strings.Join(States, ", "))
}

// CheckKind refuses a token kind the coordinator does not know.
func CheckKind(k string) error {
	if slices.Contains(TokenKinds, k) {
		return nil
	}
	if k == "" {
		return fmt.Errorf("--kind is required: say %s", strings.Join(TokenKinds, ", "))
	}
	return fmt.Errorf("--kind %q: say %s", k, strings.Join(TokenKinds, ", "))
}
