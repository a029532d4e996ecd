package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/monkeyci/monkeyci/buildscript"
)

// maxSubmoduleNesting bounds how deep submodules of submodules go.
const maxSubmoduleNesting = 10

// submodules checks out the repository's submodules, recursively, from
// their own remotes with the same credentials (a header for the
// repository's origin: a submodule elsewhere is fetched without them),
// unless .monkeyci/script.yaml says `submodules: false`. git's own rules
// stand (a submodule's file:// or ext:: URL is refused), and ours: the
// agent's git fetches them from its own host, outside any build's
// firewall, and a branch chooses its .gitmodules, so a submodule on the
// agent's host or the cloud's metadata service is refused (checkURLs).
func (m *Mirrors) submodules(ctx context.Context, r *remote, dir string, without bool) error {
	if _, err := os.Lstat(filepath.Join(dir, ".gitmodules")); err != nil {
		return nil
	}
	if without {
		// Out of the worktree, if an earlier build had them in.
		_, err := r.run(ctx, "", "-C", dir, "submodule", "deinit", "-q", "--all", "-f")
		return err
	}
	return m.submodulesOf(ctx, r, dir, hostOf(r.bare), 0)
}

// submodulesOf checks out dir's own submodules, then theirs, one level at
// a time: each level's URLs are checked before anything is fetched.
func (m *Mirrors) submodulesOf(ctx context.Context, r *remote, dir, repoHost string, nesting int) error {
	if _, err := os.Lstat(filepath.Join(dir, ".gitmodules")); err != nil {
		return nil
	}
	if nesting >= maxSubmoduleNesting {
		return fmt.Errorf("fetching %s: submodules nest deeper than %d", r.shown, maxSubmoduleNesting)
	}
	// sync and init write each submodule's URL as .gitmodules now says
	// (a relative one resolved) into dir's config: what update fetches.
	for _, step := range []string{"sync", "init"} {
		if _, err := r.run(ctx, "", "-C", dir, "submodule", step, "-q"); err != nil {
			return err
		}
	}
	urls, err := gitConfigValues(ctx, r, dir, `^submodule\..*\.url$`)
	if err != nil {
		return err
	}
	for _, u := range urls {
		if err := checkSubmoduleURL(ctx, u, repoHost); err != nil {
			return fmt.Errorf("fetching %s: submodule %s: %w (a submodule's remote must be another host; `submodules: false` in %s leaves them out)",
				r.shown, Redact(u), err, buildscript.ConfigFile)
		}
	}
	update := []string{"-C", dir, "submodule", "update", "--init"}
	done := false
	if m.Depth > 0 {
		// A server that refuses a commit no branch points at takes the
		// whole history instead.
		_, err := r.run(ctx, "fetching submodules", append(update, "--depth="+strconv.Itoa(m.Depth))...)
		done = err == nil
	}
	if !done {
		if _, err := r.run(ctx, "fetching submodules", update...); err != nil {
			return err
		}
	}
	paths, err := gitlinks(ctx, r, dir)
	if err != nil {
		return err
	}
	for _, p := range paths {
		sub := filepath.Join(dir, filepath.FromSlash(p))
		if fi, err := os.Lstat(sub); err != nil || !fi.IsDir() {
			continue // not checked out, or no folder of its own
		}
		if err := m.submodulesOf(ctx, r, sub, repoHost, nesting+1); err != nil {
			return err
		}
	}
	return nil
}

// gitlinks are the paths of dir's submodules as its index holds them,
// where git checked them out: never what .gitmodules names, which a
// branch chooses, a link out of the checkout to the agent's host too.
func gitlinks(ctx context.Context, r *remote, dir string) ([]string, error) {
	local := &remote{git: r.git, shown: r.shown}
	out, err := local.run(ctx, "", "-C", dir, "ls-files", "-s", "-z")
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, entry := range strings.Split(string(out), "\x00") {
		meta, path, ok := strings.Cut(entry, "\t")
		if ok && strings.HasPrefix(meta, "160000 ") {
			paths = append(paths, path)
		}
	}
	return paths, nil
}

// gitConfigValues are the values of dir's config keys matching pattern
// (none is no error).
func gitConfigValues(ctx context.Context, r *remote, dir, pattern string) ([]string, error) {
	local := &remote{git: r.git, shown: r.shown}
	out, err := local.run(ctx, "", "-C", dir, "config", "--get-regexp", pattern)
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 {
		return nil, nil // no key matches
	}
	if err != nil {
		return nil, err
	}
	var values []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if _, v, ok := strings.Cut(line, " "); ok {
			values = append(values, v)
		}
	}
	return values, nil
}

// checkSubmoduleURL refuses a submodule on the agent's own host or the
// cloud's metadata service: a URL whose host is, or resolves to, a
// loopback, link-local or unspecified address, unless it is the
// repository's own host (a repository served from the agent's machine,
// as in a test, keeps its submodules beside it). A URL without a host
// (a path) is refused unless the repository has none either.
func checkSubmoduleURL(ctx context.Context, u, repoHost string) error {
	host := hostOf(u)
	switch {
	case host == "" && repoHost == "":
		return nil
	case host == "":
		return fmt.Errorf("a path on the agent's machine is no submodule of a remote repository")
	case strings.EqualFold(host, repoHost):
		return nil
	}
	addrs := []net.IP{net.ParseIP(host)}
	if addrs[0] == nil {
		ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
		if err != nil {
			return nil // git says it cannot reach it
		}
		addrs = ips
	}
	for _, ip := range addrs {
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() {
			return fmt.Errorf("%s is on the agent's own host or its cloud's metadata service (%s): refused", host, ip)
		}
	}
	return nil
}

// hostOf is the host of a clone URL (scheme://[user@]host[:port]/path or
// user@host:path), "" for a local path.
func hostOf(u string) string {
	if strings.Contains(u, "://") {
		p, err := url.Parse(u)
		if err != nil || p.Scheme == "file" {
			return ""
		}
		return p.Hostname()
	}
	// scp-like: [user@]host:path, where host has no slash before the colon.
	if i := strings.Index(u, ":"); i > 0 && !strings.Contains(u[:i], "/") {
		host := u[:i]
		if at := strings.LastIndex(host, "@"); at >= 0 {
			host = host[at+1:]
		}
		return strings.Trim(host, "[]")
	}
	return ""
}
