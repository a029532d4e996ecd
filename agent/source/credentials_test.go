package source_test

import (
	"slices"
	"testing"

	"github.com/monkeyci/monkeyci/agent/source"
)

// A URL's credential splits off and goes back whole; every form it may be
// printed in is known, to be masked.
func TestAURLsCredentialSplitsOffAndIsKnownInEveryForm(t *testing.T) {
	tests := []struct {
		url, bare, info string
		forms           []string
	}{
		{"https://deploy:t0k%2Fen@git.example/a.git", "https://git.example/a.git", "deploy:t0k%2Fen",
			[]string{"deploy:t0k%2Fen", "t0k%2Fen", "t0k/en", "ZGVwbG95OnQway9lbg=="}},
		{"https://ghp_token@github.com/a/b", "https://github.com/a/b", "ghp_token",
			[]string{"ghp_token", "Z2hwX3Rva2VuOg=="}},
		{"https://git.example/a@b", "https://git.example/a@b", "", nil},                   // an @ in the path is no credential
		{"git@github.com:a/b.git", "git@github.com:a/b.git", "", nil},                     // scp-like: a user, no secret
		{"ssh://deploy@git.example/a/b.git", "ssh://deploy@git.example/a/b.git", "", nil}, // a user over ssh: a name, no secret
		{"ssh://deploy:pw@git.example/a/b.git", "ssh://git.example/a/b.git", "deploy:pw", []string{"deploy:pw", "pw", "ZGVwbG95OnB3"}},
		{"/srv/git/app", "/srv/git/app", "", nil},
		{"", "", "", nil},
	}
	for _, tc := range tests {
		bare, info := source.SplitCredentials(tc.url)
		if bare != tc.bare || info != tc.info {
			t.Errorf("SplitCredentials(%q) = %q, %q; want %q, %q", tc.url, bare, info, tc.bare, tc.info)
		}
		if back := source.WithCredentials(bare, info); back != tc.url {
			t.Errorf("WithCredentials(%q, %q) = %q, want %q back", bare, info, back, tc.url)
		}
		if forms := source.Credentials(tc.url); !slices.Equal(forms, tc.forms) {
			t.Errorf("Credentials(%q) = %q, want %q", tc.url, forms, tc.forms)
		}
	}
}

// Whatever the URL, splitting and joining gives it back, and what is shown
// of it (the bare URL, Redact's) holds none of its credential.
func FuzzSplitCredentials(f *testing.F) {
	for _, s := range []string{"https://u:p@h/x", "https://t@h", "ssh://git@h:22/x?y#z", "a://@", "x://u:p@h@i/j", "/p", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		bare, info := source.SplitCredentials(u)
		if back := source.WithCredentials(bare, info); back != u {
			t.Fatalf("split %q into %q, %q, joined %q", u, bare, info, back)
		}
		if info == "" {
			return
		}
		if b2, i2 := source.SplitCredentials(bare); i2 != "" {
			t.Fatalf("the bare URL %q of %q still has user information %q", b2, u, i2)
		}
		if len(source.Credentials(u)) == 0 {
			t.Fatalf("%q has user information %q but no credential forms", u, info)
		}
	})
}
