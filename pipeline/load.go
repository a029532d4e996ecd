package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// buildFiles are the names Load reads from DIR/.monkeyci, in this order.
var buildFiles = []string{"build.yaml", "build.yml", "build.json", "build.edn"}

// ErrNoBuildFile is wrapped by Load's error when a directory has none.
var ErrNoBuildFile = errors.New("no build file")

// maxFileSize bounds a build file; real ones are a few kilobytes.
const maxFileSize = 4 << 20

// Load reads every build file of dir/.monkeyci, joins their jobs and
// validates them together. Errors are *Error or Errors, except when no
// build file exists (ErrNoBuildFile) or one cannot be read.
func Load(dir string) (*Plan, error) {
	mdir := filepath.Join(dir, ".monkeyci")
	if fi, err := os.Stat(mdir); err != nil || !fi.IsDir() {
		return nil, noBuildFile(mdir)
	}
	var errs errList
	var jobs []Job
	var files []string
	for _, name := range buildFiles {
		path := filepath.Join(mdir, name)
		data, err := readBuildFile(dir, path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		files = append(files, path)
		js, err := Parse(path, data)
		errs.addErr(err)
		jobs = append(jobs, js...)
	}
	if len(files) == 0 {
		return nil, noBuildFile(mdir)
	}
	if err := errs.err(files...); err != nil {
		return nil, err
	}
	p, err := Validate(jobs)
	if err != nil {
		return nil, err
	}
	p.Files = files
	return p, nil
}

// readBuildFile reads a regular file that lies inside dir once links are
// followed: a build file linked to /etc/shadow or /dev/zero must not be
// read, as its text would end up in error messages shown to the repo.
func readBuildFile(dir, path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("build file %s is not a regular file", path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	if rel, err := filepath.Rel(root, real); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil, fmt.Errorf("build file %s links outside %s", path, dir)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// One byte more than allowed, so that Parse sees the file is too large.
	return io.ReadAll(io.LimitReader(f, maxFileSize+1))
}

func noBuildFile(mdir string) error {
	return fmt.Errorf("%w in %s (expected build.yaml, build.yml, build.json or build.edn)", ErrNoBuildFile, mdir)
}

// Parse reads the jobs of one build file, picking the format by the name's
// extension (.yaml, .yml, .json, .edn). Every default is filled in except
// the id of a job without one: its default, job-N, depends on the jobs of
// the other files, so Validate sets it.
func Parse(filename string, data []byte) ([]Job, error) {
	start := Position{File: filename, Line: 1, Column: 1}
	if len(data) > maxFileSize {
		return nil, &Error{Pos: start, Msg: fmt.Sprintf("file is too large (%d bytes), expected at most %d", len(data), maxFileSize)}
	}
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, size := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			off += size
		}
		return nil, &Error{Pos: newPosTracker(filename, data).at(off), Msg: "invalid UTF-8, expected UTF-8 text"}
	}
	if len(bytes.TrimSpace(bytes.TrimPrefix(data, utf8BOM))) == 0 {
		return nil, emptyFile(start)
	}
	var roots []*node
	var err error
	switch ext := strings.ToLower(filepath.Ext(filename)); ext {
	case ".yaml", ".yml":
		roots, err = parseYAML(filename, data)
	case ".json":
		roots, err = parseJSON(filename, data)
	case ".edn":
		roots, err = parseEDN(filename, data)
	default:
		return nil, &Error{Pos: Position{File: filename},
			Msg: fmt.Sprintf("unsupported build file type %q, expected .yaml, .yml, .json or .edn", ext)}
	}
	if err != nil {
		return nil, err
	}
	if len(roots) == 0 {
		return nil, emptyFile(start)
	}
	var errs errList
	jobs := decodeJobs(roots, &errs)
	if err := errs.err(filename); err != nil {
		return nil, err
	}
	return jobs, nil
}

func emptyFile(pos Position) error {
	return &Error{Pos: pos, Msg: "empty build file, expected a job (a map) or a list of jobs"}
}
