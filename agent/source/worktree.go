package source

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"
)

// WorkingTree says whether src names a local directory that is not a git
// repository (an example folder inside another project, a scratch dir):
// such a source is built as its working tree, as `monkeyci run` builds one,
// with no fetch. Only an agent on the machine that holds the directory (as
// in `monkeyci up`) can build it. A commit, branch or tag cannot be asked of it.
func WorkingTree(src Source) (dir string, ok bool, err error) {
	path := src.URL
	if rest, found := strings.CutPrefix(path, "file://"); found {
		path = rest
	}
	if !filepath.IsAbs(path) {
		return "", false, nil // a remote, or a relative path made absolute by the caller
	}
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		return "", false, nil // Fetch says what is wrong with it
	}
	if _, err := git.PlainOpen(path); !errors.Is(err, git.ErrRepositoryNotExists) {
		return "", false, nil // a repository (or one Fetch will report on)
	}
	if src.Commit != "" || src.Branch != "" || src.Tag != "" {
		return "", false, fmt.Errorf("%s is a directory, not a git repository: it has no commit, branch or tag to build (leave them out to build its files)", path)
	}
	return path, true, nil
}
