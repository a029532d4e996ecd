package admin

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

func TestReposTable(t *testing.T) {
	var buf bytes.Buffer
	err := ReposTable(&buf, []*fleet.Repo{
		{Name: "me/app", Url: "https://github.com/me/app", Forge: "github", Branches: []string{"main", "release/*"},
			HasWebhookSecret: true, HasForgeToken: true, WebhookSecret: "never", ForgeToken: "shown"},
		{Name: "local", Url: "/srv/git/local"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NAME    URL                        FORGE   BRANCHES        WEBHOOK-SECRET  FORGE-TOKEN\n" +
		"me/app  https://github.com/me/app  github  main,release/*  yes             yes\n" +
		"local   /srv/git/local             -       *               no              no\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	buf.Reset()
	if err := ReposTable(&buf, nil); err != nil || buf.String() != "NAME  URL  FORGE  BRANCHES  WEBHOOK-SECRET  FORGE-TOKEN\n" {
		t.Errorf("no repositories: %q, %v", buf.String(), err)
	}
}

func TestReposJSONHasStableKeysAndNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	r := &fleet.Repo{Name: "me/app", Url: "https://github.com/me/app", WebhookSecret: "never", ForgeToken: "shown", HasForgeToken: true, Created: ts(-time.Hour)}
	if err := WriteJSON(&buf, Repos([]*fleet.Repo{r})); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"api_url", "branches", "build_timeout_seconds", "cancel_superseded", "created", "default_branch", "depth", "forge", "has_forge_token", "has_webhook_secret", "max_running", "name", "priority", "url"}
	if keys := sortedKeys(got[0]); !slices.Equal(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
	s := buf.String()
	if strings.Contains(s, "never") || strings.Contains(s, "shown") {
		t.Errorf("a secret is in the JSON:\n%s", s)
	}
	if !strings.Contains(s, `"branches": []`) || !strings.Contains(s, `"has_forge_token": true`) || !strings.Contains(s, `"created": "2026-03-01T11:00:00Z"`) {
		t.Errorf("unexpected JSON:\n%s", s)
	}
	buf.Reset()
	if err := WriteJSON(&buf, Repos(nil)); err != nil || buf.String() != "[]\n" {
		t.Errorf("no repositories: %q, %v", buf.String(), err)
	}
	buf.Reset()
	if err := WriteJSON(&buf, Repo(&fleet.Repo{Name: "x"})); err != nil || !strings.Contains(buf.String(), `"created": null`) {
		t.Errorf("no created time: %q, %v", buf.String(), err)
	}
}

func TestSecretsTable(t *testing.T) {
	var buf bytes.Buffer
	err := SecretsTable(&buf, []*fleet.SecretInfo{
		{Repo: "me/app", Key: "NPM_TOKEN", Updated: ts(-3 * time.Hour)},
		{Repo: "me/app", Key: "K"},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	stamp := now.Add(-3*time.Hour).Local().Format("2006-01-02 15:04:05 MST") + " (3h ago)"
	want := "" +
		"KEY        UPDATED\n" +
		"NPM_TOKEN  " + stamp + "\n" +
		"K          -\n"
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestSecretsJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, Secrets([]*fleet.SecretInfo{{Repo: "me/app", Key: "NPM_TOKEN", Updated: ts(0)}})); err != nil {
		t.Fatal(err)
	}
	want := "[\n  {\n    \"repo\": \"me/app\",\n    \"key\": \"NPM_TOKEN\",\n    \"updated\": \"2026-03-01T12:00:00Z\"\n  }\n]\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
	buf.Reset()
	if err := WriteJSON(&buf, Secrets(nil)); err != nil || buf.String() != "[]\n" {
		t.Errorf("no secrets: %q, %v", buf.String(), err)
	}
}

func TestCheckForge(t *testing.T) {
	for _, f := range []string{"", "github", "gitlab", "gitea", "forgejo", "bitbucket"} {
		if err := CheckForge(f); err != nil {
			t.Errorf("%q: %v", f, err)
		}
	}
	if err := CheckForge("svn"); err == nil || err.Error() != `--forge "svn": say github, gitlab, gitea, bitbucket` {
		t.Errorf("svn: %v", err)
	}
}

func TestReadSecret(t *testing.T) {
	for _, c := range []struct {
		name, in string
		terminal bool
		want     string
		err      string
	}{
		{"a line", "s3cret\n", false, "s3cret", ""},
		{"no newline", "s3cret", false, "s3cret", ""},
		{"crlf", "s3cret\r\n", false, "s3cret", ""},
		{"all of it", "a\nb\n\n", false, "a\nb\n", ""},
		{"spaces kept", " s3cret \n", false, " s3cret ", ""},
		{"terminal: one line", "s3cret\nmore\n", true, "s3cret", ""},
		{"terminal: at EOF", "s3cret", true, "s3cret", ""},
		{"empty", "", false, "", "the value is empty: give it on standard input"},
		{"a newline only", "\n", false, "", "the value is empty: give it on standard input"},
		{"terminal: empty line", "\nmore", true, "", "the value is empty: give it on standard input"},
		{"too large", strings.Repeat("x", MaxSecret+1), false, "", "the value is larger than 1048576 bytes"},
		{"terminal: too large", strings.Repeat("x", MaxSecret+1) + "\n", true, "", "the value is larger than 1048576 bytes"},
	} {
		prompted := 0
		got, err := ReadSecret(strings.NewReader(c.in), c.terminal, func() { prompted++ }, "the value")
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%s: %q, %v; want error %q", c.name, got, err, c.err)
			}
		} else if err != nil || string(got) != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
		if want := map[bool]int{true: 1, false: 0}[c.terminal]; prompted != want {
			t.Errorf("%s: prompted %d times, want %d", c.name, prompted, want)
		}
	}
	// exactly the largest value, with its newline
	if got, err := ReadSecret(strings.NewReader(strings.Repeat("x", MaxSecret)+"\r\n"), false, func() {}, "v"); err != nil || len(got) != MaxSecret {
		t.Errorf("largest value: %d bytes, %v", len(got), err)
	}
}
