package forge

import "testing"

// Events differ in key exactly when they are different events: a push, a
// tag and a pull request of the same commit are three, one pull request's
// "opened" and its redelivery are one.
func TestAnEventsKeyNamesKindRefAndCommit(t *testing.T) {
	const c1, c2 = "0123456789abcdef0123456789abcdef01234567", "89abcdef0123456789abcdef0123456789abcdef"
	push := Event{Kind: Push, Repo: "acme/app", Branch: "main", Commit: c1, Sender: "alice"}
	tests := []struct {
		name string
		ev   Event
		same bool
	}{
		{"the same push by someone else", Event{Kind: Push, Repo: "acme/app", Branch: "main", Commit: c1, Sender: "bob"}, true},
		{"another commit", Event{Kind: Push, Branch: "main", Commit: c2}, false},
		{"another branch", Event{Kind: Push, Branch: "dev", Commit: c1}, false},
		{"a tag of the commit", Event{Kind: Tag, Tag: "main", Commit: c1}, false},
		{"a pull request from the branch", Event{Kind: PullRequest, Number: 7, Branch: "main", Commit: c1}, false},
	}
	for _, tc := range tests {
		if same := tc.ev.Key() == push.Key(); same != tc.same {
			t.Errorf("%s: key %q against %q, same %v, want %v", tc.name, tc.ev.Key(), push.Key(), same, tc.same)
		}
	}
	pr := Event{Kind: PullRequest, Number: 7, Branch: "feature", Commit: c1}
	if other := (Event{Kind: PullRequest, Number: 8, Branch: "feature", Commit: c1}); pr.Key() == other.Key() {
		t.Errorf("two pull requests share key %q", pr.Key())
	}
}
