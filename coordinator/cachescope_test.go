package coordinator

import "testing"

func TestCacheScopeOf(t *testing.T) {
	for _, tc := range []struct {
		name          string
		src           Source
		pr            int
		defaultBranch string
		want          CacheScope
	}{
		{"default branch", Source{Branch: "main"}, 0, "", CacheScope{Scope: "branch:main"}},
		{"a branch reads main's", Source{Branch: "feature"}, 0, "", CacheScope{Scope: "branch:feature", Fallback: "branch:main"}},
		{"another default", Source{Branch: "feature"}, 0, "trunk", CacheScope{Scope: "branch:feature", Fallback: "branch:trunk"}},
		{"main is just a branch then", Source{Branch: "main"}, 0, "trunk", CacheScope{Scope: "branch:main", Fallback: "branch:trunk"}},
		{"no branch is the default's head", Source{}, 0, "trunk", CacheScope{Scope: "branch:trunk"}},
		{"pull request alone", Source{Branch: "feature"}, 7, "", CacheScope{Scope: "pr:7"}},
		{"pull request from main", Source{Branch: "main"}, 8, "", CacheScope{Scope: "pr:8"}},
		{"tag alone", Source{Tag: "v1.0"}, 0, "", CacheScope{Scope: "tag:v1.0"}},
		{"tag of a branch", Source{Branch: "main", Tag: "v2"}, 0, "", CacheScope{Scope: "tag:v2"}},
	} {
		if got := CacheScopeOf(tc.src, tc.pr, tc.defaultBranch); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
