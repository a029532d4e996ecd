package source

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// remote runs the git program against one repository's URL. Its
// credentials go to git in its environment, as an HTTP header (never in a
// command line, which other users of the machine can read, nor in a
// repository's config).
type remote struct {
	git   string
	url   string // credentials included (ssh's user stays in the URL)
	bare  string // without credentials
	shown string
	env   []string
	// config is git's configuration for this remote's commands, given
	// in the environment (GIT_CONFIG_COUNT), never written in a repository.
	config []setting
}

// setting is one of git's configuration keys and its value.
type setting struct{ key, value string }

// fetch fetches specs from the remote into repo. The URL given git is the
// bare one: the credentials are in the environment.
func (r *remote) fetch(ctx context.Context, repo string, opts []string, specs ...string) error {
	args := append([]string{"-C", repo, "fetch", "-q", "--no-write-fetch-head"}, opts...)
	args = append(append(args, r.bare), specs...)
	_, err := r.run(ctx, "downloading objects", args...)
	return err
}

// answers asks the remote for its HEAD, and says why not when it does not
// answer (or does not let the URL's credentials in).
func (r *remote) answers(ctx context.Context) error {
	_, err := r.run(ctx, "listing refs", "ls-remote", r.bare, "HEAD")
	return err
}

// defaultBranch is the branch the remote's HEAD names.
func (r *remote) defaultBranch(ctx context.Context) (string, error) {
	out, err := r.run(ctx, "listing refs", "ls-remote", "--symref", r.bare, "HEAD")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "ref: refs/heads/"); ok {
			if name, _, ok := strings.Cut(rest, "\tHEAD"); ok {
				return name, nil
			}
		}
	}
	return "", &notFound{msg: fmt.Sprintf("no default branch in %s (is the repository empty?)", r.shown), is: ErrBranchNotFound}
}

// revParse names the object spec names in repo, in full.
func (r *remote) revParse(ctx context.Context, repo, spec string) (string, error) {
	out, err := r.run(ctx, "", "-C", repo, "rev-parse", "--verify", "-q", spec)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// notFoundOutput is what git prints when the remote has no such repository.
var notFoundOutput = regexp.MustCompile(`(?i)repository not found|does not appear to be a git repository|not found: .*repository|no such repository|could not read from remote repository`)

// authOutput is what git prints when the remote refuses its credentials.
var authOutput = regexp.MustCompile(`(?i)returned error: 40[13]|authentication failed|could not read (username|password)|permission denied \(publickey`)

// hostKeyOutput is what ssh prints when it does not trust the host.
var hostKeyOutput = regexp.MustCompile(`(?i)host key verification failed|remote host identification has changed`)

// run runs git with args and returns its standard output; an error names
// what failed (op, when it is the remote's part) with git's own words,
// credentials scrubbed.
func (r *remote) run(ctx context.Context, op string, args ...string) ([]byte, error) {
	return r.runWith(ctx, nil, op, args...)
}

// runWith is run with stdin as git's standard input.
func (r *remote) runWith(ctx context.Context, stdin io.Reader, op string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.git, args...)
	cmd.Stdin = stdin
	// Canceled, git goes with the helpers it started (git-remote-http,
	// ssh), which hold its output open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	// A checkout writes Git LFS files as their pointers even where
	// git-lfs's filter is installed: the agent fetches them after (lfs).
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false", "LC_ALL=C", "GIT_LFS_SKIP_SMUDGE=1")
	cmd.Env = append(cmd.Env, r.env...)
	if len(r.config) > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("GIT_CONFIG_COUNT=%d", len(r.config)))
		for i, c := range r.config {
			cmd.Env = append(cmd.Env, fmt.Sprintf("GIT_CONFIG_KEY_%d=%s", i, c.key), fmt.Sprintf("GIT_CONFIG_VALUE_%d=%s", i, c.value))
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	said := strings.TrimSpace(stderr.String())
	if said == "" {
		said = err.Error()
	}
	if ctx.Err() != nil {
		said = ctx.Err().Error() + " (" + said + ")"
	}
	remoteOp := op != ""
	if !remoteOp {
		op = "git " + args[min(2, len(args)-1)]
	}
	// ssh's refusals end in "Could not read from remote repository",
	// which names no missing repository.
	refused, first := true, strings.TrimSpace(strings.SplitN(said, "\n", 2)[0])
	switch {
	case remoteOp && hostKeyOutput.MatchString(said):
		said = "the host's SSH key is not known, or has changed (an agent learns a host's key on its first fetch with a deploy key, and holds to it): " + first
	case remoteOp && authOutput.MatchString(said):
		said = "authorization failed: " + first
	default:
		refused = false
	}
	msg := scrub(fmt.Sprintf("fetching %s: %s: %s", r.shown, op, said), r.url)
	if remoteOp && !refused && notFoundOutput.MatchString(said) {
		first, _, _ := strings.Cut(said, "\n")
		msg = scrub(fmt.Sprintf("fetching %s: repository not found (%s)", r.shown, first), r.url)
		return nil, &notFound{msg: msg, is: ErrRepositoryNotFound, err: err}
	}
	if ctx.Err() != nil {
		return nil, &scrubbed{msg: msg, err: ctx.Err()}
	}
	return nil, &scrubbed{msg: msg, err: err}
}

// credentialConfig passes the credentials of an http(s) URL to git (and
// git-lfs) as an Authorization header, in their environment, for that
// URL's origin only: a redirect or a submodule elsewhere never receives it.
func credentialConfig(u string) []setting {
	bare, info := SplitCredentials(u)
	parsed, err := url.Parse(bare)
	if info == "" || err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
		return nil
	}
	origin := parsed.Scheme + "://" + parsed.Host + "/"
	user, pass, _ := strings.Cut(info, ":")
	basic := base64.StdEncoding.EncodeToString([]byte(unescape(user) + ":" + unescape(pass)))
	return []setting{{"http." + origin + ".extraHeader", "Authorization: Basic " + basic}}
}

// branchMissing says a branch is missing when git's failure says so.
func branchMissing(err error, branch, shown string) error {
	if errors.Is(err, ErrRepositoryNotFound) || !strings.Contains(err.Error(), "couldn't find remote ref") {
		return err
	}
	return &notFound{msg: fmt.Sprintf("branch %s not found in %s", branch, shown), is: ErrBranchNotFound, err: err}
}

// tagMissing says a tag is missing when git's failure says so.
func tagMissing(err error, tag, shown string) error {
	if errors.Is(err, ErrRepositoryNotFound) || !strings.Contains(err.Error(), "couldn't find remote ref") {
		return err
	}
	return &notFound{msg: fmt.Sprintf("tag %s not found in %s", tag, shown), is: ErrTagNotFound, err: err}
}
