package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The job API's folder has a predictable name in the shared temp dir: one
// that another user could have made first is refused, not used.
func TestOwnDirRefusesWhatOthersCouldEnter(t *testing.T) {
	root := t.TempDir()
	open := filepath.Join(root, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dir, says string }{
		{filepath.Join(root, "new", "mci"), ""},
		{open, "may be entered by others"},
		{link, "is not a directory"},
		{file, "not a directory"},
	} {
		err := ownDir(tc.dir)
		if tc.says == "" && err != nil || tc.says != "" && (err == nil || !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("%s: %v, want %q", tc.dir, err, tc.says)
		}
	}
}
