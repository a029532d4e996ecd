package admin

import (
	"os"
	"path/filepath"
	"testing"
)

func TestResolveRepo(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, want string }{
		{"https://github.com/me/app.git", "https://github.com/me/app.git"},
		{"file:///src/app", "file:///src/app"},
		{"git@github.com:me/app.git", "git@github.com:me/app.git"},
		{"/src/app", "/src/app"},
		{".", wd},
		{"sub/dir", filepath.Join(wd, "sub/dir")},
		{"../x", filepath.Join(filepath.Dir(wd), "x")},
	} {
		got, err := ResolveRepo(c.in)
		if err != nil || got != c.want {
			t.Errorf("ResolveRepo(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	if _, err := ResolveRepo(""); err == nil {
		t.Error("an empty --repo is accepted")
	}
}

func TestParseKV(t *testing.T) {
	m, err := ParseKV("--param", []string{"a=1", "b=x=y", "c="})
	if err != nil || len(m) != 3 || m["a"] != "1" || m["b"] != "x=y" || m["c"] != "" {
		t.Errorf("got %v, %v", m, err)
	}
	if m, err := ParseKV("--label", nil); m != nil || err != nil {
		t.Errorf("none: %v, %v", m, err)
	}
	for _, bad := range []string{"a", "=1"} {
		if _, err := ParseKV("--label", []string{bad}); err == nil || err.Error() != `--label "`+bad+`": expected KEY=VALUE` {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestChecks(t *testing.T) {
	for _, s := range []string{"", "queued", "running", "ended"} {
		if err := CheckState(s); err != nil {
			t.Errorf("state %q: %v", s, err)
		}
	}
	if err := CheckState("done"); err == nil {
		t.Error("state done accepted")
	}
	for _, k := range []string{"agent", "admin", "viewer"} {
		if err := CheckKind(k); err != nil {
			t.Errorf("kind %q: %v", k, err)
		}
	}
	if CheckKind("") == nil || CheckKind("root") == nil {
		t.Error("a bad kind is accepted")
	}
}

func TestRepoName(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ repo, want string }{
		{"acme/app", "acme/app"},
		{"app", "app"},
		{dir, ""},
		{"https://github.com/acme/app.git", ""},
		{"git@github.com:acme/app.git", ""},
	} {
		if got := RepoName(tc.repo); got != tc.want {
			t.Errorf("RepoName(%q) = %q, want %q", tc.repo, got, tc.want)
		}
	}
}
