package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// withStdin makes os.Stdin a file holding content until the test ends.
func withStdin(t *testing.T, content string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = f
	t.Cleanup(func() {
		os.Stdin = old
		f.Close()
	})
}

// mark is where the fake's call log ends now. (The fake's repositories
// and secrets are replayed from that log, so tests of them do not reset it.)
func mark(f *fakeAdmin) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// assertRequestsSince is assertRequests for the calls after mark m.
func assertRequestsSince(t *testing.T, f *fakeAdmin, m int, method string, want ...proto.Message) {
	t.Helper()
	f.mu.Lock()
	var got []proto.Message
	for i := m; i < len(f.calls); i++ {
		if f.calls[i] == method {
			got = append(got, f.reqs[i])
		}
	}
	f.mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("%s requests: got %v, want %v", method, got, want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("%s request %d: got %v, want %v", method, i, got[i], want[i])
		}
	}
}

func jsonKeys(t *testing.T, out string) []string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, out)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestAdminCLIReposAdd(t *testing.T) {
	f := newFakeAdmin()
	addr := serveFake(t, f, nil)

	withStdin(t, "glpat-token\n")
	code, out, errOut := cli(t, plain(addr, "repos", "add", "team/site", "--url", "https://gitlab.example.com/team/site.git",
		"--webhook-secret", "whsec-xyz", "--branches", "main,release/*", "--forge", "gitlab",
		"--api-url", "https://gitlab.example.com", "--forge-token-stdin", "--default-branch", "trunk", "--cancel-superseded=false", "--max-running", "2", "--build-timeout", "30m", "--priority", "high")...)
	want := "" +
		"NAME       URL                                       FORGE   BRANCHES        WEBHOOK-SECRET  FORGE-TOKEN\n" +
		"team/site  https://gitlab.example.com/team/site.git  gitlab  main,release/*  yes             yes\n"
	if code != 0 || out != want || errOut != "" {
		t.Errorf("repos add: exit %d, %q\n%s\nwant\n%s", code, errOut, out, want)
	}
	if strings.Contains(out+errOut, "glpat-token") || strings.Contains(out+errOut, "whsec-xyz") {
		t.Errorf("a secret was printed:\n%s%s", out, errOut)
	}
	assertRequests(t, f, "AddRepo", &fleet.Repo{
		Name: "team/site", Url: "https://gitlab.example.com/team/site.git", WebhookSecret: "whsec-xyz",
		Branches: []string{"main", "release/*"}, Forge: "gitlab", ApiUrl: "https://gitlab.example.com", ForgeToken: "glpat-token",
		DefaultBranch: "trunk", KeepSuperseded: true, MaxRunning: 2, BuildTimeoutSeconds: 1800, Priority: "high",
	})

	// a local path is made absolute; -o json has stable keys and no secrets
	f.reset()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cli(t, plain(addr, "repos", "add", "local", "--url", ".", "-o", "json")...)
	if code != 0 {
		t.Fatalf("repos add -o json: exit %d, %q", code, errOut)
	}
	keys := jsonKeys(t, out)
	if wantKeys := []string{"api_url", "branches", "build_timeout_seconds", "cancel_superseded", "created", "default_branch", "depth", "forge", "has_forge_token", "has_webhook_secret", "max_running", "name", "priority", "url"}; !slices.Equal(keys, wantKeys) {
		t.Errorf("repos add -o json keys %v, want %v", keys, wantKeys)
	}
	if !strings.Contains(out, `"branches": []`) || !strings.Contains(out, `"has_forge_token": false`) || !strings.Contains(out, `"depth": null`) ||
		!strings.Contains(out, `"cancel_superseded": true`) {
		t.Errorf("repos add -o json:\n%s", out)
	}
	assertRequests(t, f, "AddRepo", &fleet.Repo{Name: "local", Url: wd, DefaultBranch: "main"})

	// usage errors: one clear line, exit 2, nothing asked
	f.reset()
	for _, c := range []struct {
		args  []string
		stdin string
		err   string
	}{
		{[]string{"repos", "add", "me/app"}, "", "monkeyci: --url is required: the repository's clone URL or local path\n"},
		{[]string{"repos", "add", "me/app", "--url", "https://x/me/app", "--forge", "svn"}, "", "monkeyci: --forge \"svn\": say github, gitlab, gitea, bitbucket\n"},
		{[]string{"repos", "add", "me/app", "--url", "https://x/me/app", "--forge-token-stdin"}, "\n", "monkeyci: the forge token is empty: give it on standard input\n"},
		{[]string{"repos", "add", "me/app", "--url", "https://x/me/app", "--branches", "main,"}, "", "monkeyci: --branches \"main,\": a branch glob is empty\n"},
		{[]string{"repos", "add", "--url", "https://x/me/app"}, "", "monkeyci: accepts 1 arg(s), received 0\n"},
		{[]string{"repos", "add", "me/app", "--url", "https://x/me/app", "--default-branch", "my branch"}, "", "monkeyci: --default-branch \"my branch\": expected a branch name like main\n"},
		{[]string{"repos", "add", "me/app", "--url", "https://x/me/app", "--max-running", "-1"}, "", "monkeyci: --max-running -1: expected how many builds may run at once, like 2, or 0 for any\n"},
		{[]string{"repos", "add", "me/app", "--url", "https://x/me/app", "--build-timeout", "-5m"}, "", "monkeyci: --build-timeout -5m0s: expected how long a build may run, like 30m\n"},
	} {
		withStdin(t, c.stdin)
		if code, out, errOut := cli(t, plain(addr, c.args...)...); code != 2 || out != "" || errOut != c.err {
			t.Errorf("%v: exit %d, %q, %q", c.args, code, out, errOut)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("usage errors made calls: %v", f.calls)
	}
	assertTokens(t, f, "Bearer "+fakeToken)
}

func TestAdminCLIReposListRemove(t *testing.T) {
	f := newFakeAdmin()
	addr := serveFake(t, f, nil)
	for _, args := range [][]string{
		{"repos", "add", "me/app", "--url", "https://github.com/me/app", "--webhook-secret", "s", "--forge", "github"},
		{"repos", "add", "other", "--url", "git@example.com:other.git", "--branches", "main"},
	} {
		if code, _, errOut := cli(t, plain(addr, args...)...); code != 0 {
			t.Fatalf("%v: exit %d, %q", args, code, errOut)
		}
	}
	assertRequests(t, f, "AddRepo",
		&fleet.Repo{Name: "me/app", Url: "https://github.com/me/app", WebhookSecret: "s", Forge: "github", DefaultBranch: "main"},
		&fleet.Repo{Name: "other", Url: "git@example.com:other.git", Branches: []string{"main"}, DefaultBranch: "main"})

	code, out, errOut := cli(t, plain(addr, "repos", "ls")...)
	want := "" +
		"NAME    URL                        FORGE   BRANCHES  WEBHOOK-SECRET  FORGE-TOKEN\n" +
		"me/app  https://github.com/me/app  github  *         yes             no\n" +
		"other   git@example.com:other.git  -       main      no              no\n"
	if code != 0 || out != want {
		t.Errorf("repos ls: exit %d, %q\n%s\nwant\n%s", code, errOut, out, want)
	}
	code, out, _ = cli(t, plain(addr, "repos", "list", "-o", "json")...)
	var repos []map[string]any
	if err := json.Unmarshal([]byte(out), &repos); code != 0 || err != nil || len(repos) != 2 ||
		repos[0]["name"] != "me/app" || repos[0]["has_webhook_secret"] != true || repos[1]["forge"] != "" {
		t.Errorf("repos ls -o json: exit %d, %v\n%s", code, err, out)
	}
	if strings.Contains(out, `"webhook_secret"`) || strings.Contains(out, `"forge_token"`) {
		t.Errorf("repos ls -o json shows secrets:\n%s", out)
	}

	code, out, errOut = cli(t, plain(addr, "repos", "rm", "me/app")...)
	if code != 0 || out != "removed repository me/app (https://github.com/me/app) and its secrets\n" {
		t.Errorf("repos rm: exit %d, %q, %q", code, out, errOut)
	}
	assertRequests(t, f, "RemoveRepo", &fleet.RepoRef{Name: "me/app"})
	code, out, errOut = cli(t, plain(addr, "repos", "remove", "other", "-o", "json")...)
	if code != 0 || jsonKeys(t, out)[0] != "api_url" || !strings.Contains(out, `"name": "other"`) {
		t.Errorf("repos remove -o json: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, _ := cli(t, plain(addr, "repos", "ls", "-o", "json")...); code != 0 || out != "[]\n" {
		t.Errorf("repos ls after rm: exit %d, %q", code, out)
	}
	code, out, errOut = cli(t, plain(addr, "repos", "rm", "me/app")...)
	if code != 1 || out != "" || errOut != "monkeyci: repository me/app: not found\n" {
		t.Errorf("repos rm again: exit %d, %q, %q", code, out, errOut)
	}
}

func TestAdminCLISecrets(t *testing.T) {
	f := newFakeAdmin()
	addr := serveFake(t, f, nil)
	if code, _, errOut := cli(t, plain(addr, "repos", "add", "me/app", "--url", "https://github.com/me/app")...); code != 0 {
		t.Fatalf("repos add: exit %d, %q", code, errOut)
	}

	const value = "hunter2-very-secret"
	for _, c := range []struct {
		key, stdin, sent string
	}{
		{"NPM_TOKEN", value + "\n", value},                                   // one trailing newline dropped
		{"DEPLOY_KEY", value + "\r\n", value},                                // a CRLF one too
		{"KUBECONFIG", "line1\n" + value + "\n\n", "line1\n" + value + "\n"}, // all of stdin, only one newline dropped
	} {
		m := mark(f)
		withStdin(t, c.stdin)
		args := plain(addr, "secrets", "set", "me/app", c.key)
		for _, a := range args {
			if strings.Contains(a, value) {
				t.Fatalf("the value is in argv: %v", args)
			}
		}
		code, out, errOut := cli(t, args...)
		if code != 0 || out != "secret "+c.key+" of me/app is set\n" || errOut != "" {
			t.Errorf("secrets set %s: exit %d, %q, %q", c.key, code, out, errOut)
		}
		if strings.Contains(out+errOut, value) {
			t.Errorf("secrets set %s printed the value: %q %q", c.key, out, errOut)
		}
		assertRequestsSince(t, f, m, "SetSecret", &fleet.SetSecretRequest{Repo: "me/app", Key: c.key, Value: []byte(c.sent)})
	}

	// an empty value, or none, is a usage error and nothing is sent
	m := mark(f)
	for _, stdin := range []string{"", "\n"} {
		withStdin(t, stdin)
		code, out, errOut := cli(t, plain(addr, "secrets", "set", "me/app", "EMPTY")...)
		if code != 2 || out != "" || errOut != "monkeyci: the value of EMPTY is empty: give it on standard input\n" {
			t.Errorf("secrets set %q: exit %d, %q, %q", stdin, code, out, errOut)
		}
	}
	// there is no way to give the value on the command line
	if code, _, errOut := cli(t, plain(addr, "secrets", "set", "me/app", "X", value)...); code != 2 || strings.Contains(errOut, value) {
		t.Errorf("secrets set with the value as an argument: exit %d, %q", code, errOut)
	}
	if code, _, _ := cli(t, plain(addr, "secrets", "set", "me/app", "X", "--value", value)...); code != 2 {
		t.Errorf("secrets set --value: exit %d", code)
	}
	if n := mark(f); n != m {
		t.Errorf("usage errors made calls: %v", f.calls[m:])
	}

	// ls: keys and times, never values
	code, out, errOut := cli(t, plain(addr, "secrets", "ls", "me/app")...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "KEY") || !strings.Contains(lines[0], "UPDATED") ||
		!strings.HasPrefix(lines[1], "DEPLOY_KEY ") || !strings.HasPrefix(lines[2], "KUBECONFIG ") || !strings.HasPrefix(lines[3], "NPM_TOKEN ") ||
		!strings.Contains(lines[1], " ago)") {
		t.Errorf("secrets ls: exit %d, %q\n%s", code, errOut, out)
	}
	if strings.Contains(out, value) {
		t.Errorf("secrets ls shows a value:\n%s", out)
	}
	assertRequestsSince(t, f, m, "ListSecrets", &fleet.RepoRef{Name: "me/app"})
	code, out, _ = cli(t, plain(addr, "secrets", "list", "me/app", "-o", "json")...)
	var secrets []map[string]any
	if err := json.Unmarshal([]byte(out), &secrets); code != 0 || err != nil || len(secrets) != 3 ||
		secrets[0]["key"] != "DEPLOY_KEY" || secrets[0]["repo"] != "me/app" || secrets[0]["updated"] == nil || len(secrets[0]) != 3 {
		t.Errorf("secrets ls -o json: exit %d, %v\n%s", code, err, out)
	}
	if strings.Contains(out, value) {
		t.Errorf("secrets ls -o json shows a value:\n%s", out)
	}

	// rm
	m = mark(f)
	code, out, errOut = cli(t, plain(addr, "secrets", "rm", "me/app", "NPM_TOKEN")...)
	if code != 0 || out != "removed secret NPM_TOKEN of me/app\n" {
		t.Errorf("secrets rm: exit %d, %q, %q", code, out, errOut)
	}
	assertRequestsSince(t, f, m, "RemoveSecret", &fleet.SecretRef{Repo: "me/app", Key: "NPM_TOKEN"})
	code, out, errOut = cli(t, plain(addr, "secrets", "rm", "me/app", "NPM_TOKEN", "-o", "json")...)
	if code != 1 || out != "" || errOut != "monkeyci: secret NPM_TOKEN of me/app: not found\n" {
		t.Errorf("secrets rm again: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, _ := cli(t, plain(addr, "secrets", "ls", "me/app", "-o", "json")...); code != 0 || strings.Contains(out, "NPM_TOKEN") {
		t.Errorf("secrets ls after rm: exit %d\n%s", code, out)
	}

	// a repository that is not registered: the coordinator's error, exit 1
	withStdin(t, value)
	code, out, errOut = cli(t, plain(addr, "secrets", "set", "nope", "K")...)
	if code != 1 || out != "" || errOut != "monkeyci: repository nope: not found\n" {
		t.Errorf("secrets set on an unknown repository: exit %d, %q, %q", code, out, errOut)
	}
}

func TestAdminCLIReposCompletion(t *testing.T) {
	f := newFakeAdmin()
	addr := serveFake(t, f, nil)
	if code, _, errOut := cli(t, plain(addr, "repos", "add", "me/app", "--url", "https://github.com/me/app")...); code != 0 {
		t.Fatalf("repos add: exit %d, %q", code, errOut)
	}
	withStdin(t, "v")
	if code, _, errOut := cli(t, plain(addr, "secrets", "set", "me/app", "TOKEN")...); code != 0 {
		t.Fatalf("secrets set: exit %d, %q", code, errOut)
	}
	if _, out, _ := cli(t, append(plain(addr, "__complete", "repos", "rm"), "")...); !strings.HasPrefix(out, "me/app\thttps://github.com/me/app\n") {
		t.Errorf("repos: %q", out)
	}
	if _, out, _ := cli(t, append(plain(addr, "__complete", "secrets", "rm", "me/app"), "")...); !strings.HasPrefix(out, "TOKEN\n") {
		t.Errorf("secret keys: %q", out)
	}
	if _, out, _ := cli(t, "__complete", "repos", "add", "x", "--forge", ""); !strings.HasPrefix(out, "github\ngitlab\ngitea\nbitbucket\n") {
		t.Errorf("forges: %q", out)
	}
}

// --webhook-secret-stdin reads the secret as one line of standard input;
// with --forge-token-stdin too, the token is the rest.
func TestAdminCLIReposAddReadsTheWebhookSecretFromStdin(t *testing.T) {
	f := newFakeAdmin()
	addr := serveFake(t, f, nil)
	for _, c := range []struct {
		name          string
		args          []string
		stdin         string
		secret, token string
		err           string
	}{
		{"a line", []string{"--webhook-secret-stdin"}, "whsec-line\n", "whsec-line", "", ""},
		{"a line without its newline", []string{"--webhook-secret-stdin"}, "whsec-line", "whsec-line", "", ""},
		{"a CRLF line, the rest left", []string{"--webhook-secret-stdin"}, "whsec-line\r\nnot read\n", "whsec-line", "", ""},
		{"and the forge token", []string{"--webhook-secret-stdin", "--forge-token-stdin"}, "whsec-line\nglpat-token\n", "whsec-line", "glpat-token", ""},
		{"an empty line", []string{"--webhook-secret-stdin"}, "\nwhsec-line\n", "", "", "monkeyci: the webhook secret is empty: give it as the first line of standard input\n"},
		{"nothing", []string{"--webhook-secret-stdin"}, "", "", "", "monkeyci: the webhook secret is empty: give it as the first line of standard input\n"},
		{"no token after it", []string{"--webhook-secret-stdin", "--forge-token-stdin"}, "whsec-line\n", "", "", "monkeyci: the forge token is empty: give it on standard input\n"},
		{"and the flag", []string{"--webhook-secret-stdin", "--webhook-secret", "s"}, "whsec-line\n", "", "", "monkeyci: give the webhook secret by --webhook-secret or by --webhook-secret-stdin, not both\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := mark(f)
			withStdin(t, c.stdin)
			code, out, errOut := cli(t, plain(addr, append([]string{"repos", "add", "me/app", "--url", "https://x/me/app"}, c.args...)...)...)
			if c.err != "" {
				if code != 2 || out != "" || errOut != c.err {
					t.Errorf("exit %d, %q, %q; want 2 and %q", code, out, errOut, c.err)
				}
				assertRequestsSince(t, f, m, "AddRepo")
				return
			}
			if code != 0 || strings.Contains(out+errOut, c.secret) {
				t.Errorf("exit %d, %q, %q", code, out, errOut)
			}
			assertRequestsSince(t, f, m, "AddRepo", &fleet.Repo{Name: "me/app", Url: "https://x/me/app", WebhookSecret: c.secret, ForgeToken: c.token, DefaultBranch: "main"})
		})
	}
}
