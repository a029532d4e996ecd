package logstore

import (
	"fmt"
	"strings"

	"github.com/monkeyci/monkeyci/logorder"
)

// maxID bounds the length of a build or job id (file names stay short).
const maxID = 128

// Stream names.
const (
	Stdout = "out"
	Stderr = "err"
	// Order is a job's order index of its out and err (package logorder).
	Order = logorder.Stream
)

// Key names one output stream of one attempt of a build.
type Key struct {
	Build   string
	Attempt int
	Job     string // "" is the script container
	Stream  string // "out", "err" or "ord"
}

func (k Key) String() string {
	return fmt.Sprintf("%s#%d/%s/%s", k.Build, k.Attempt, k.Job, k.Stream)
}

// Validate reports whether the key names a stream (ErrInvalid if not).
// Build and job ids are made of letters, digits, '.', '_' and '-', at most
// 128 of them, and are not "." or ".."; the job may be "". The attempt
// counts from 1 and the stream is "out", "err" or "ord".
func (k Key) Validate() error {
	if err := validID("build", k.Build); err != nil {
		return err
	}
	if k.Attempt < 1 {
		return fmt.Errorf("%w: attempt %d", ErrInvalid, k.Attempt)
	}
	if k.Job != "" {
		if err := validID("job", k.Job); err != nil {
			return err
		}
	}
	if k.Stream != Stdout && k.Stream != Stderr && k.Stream != Order {
		return fmt.Errorf("%w: stream %q (want %q, %q or %q)", ErrInvalid, k.Stream, Stdout, Stderr, Order)
	}
	return nil
}

func validID(what, id string) error {
	if id == "" || len(id) > maxID || id == "." || id == ".." {
		return fmt.Errorf("%w: %s id %q", ErrInvalid, what, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %s id %q", ErrInvalid, what, id)
		}
	}
	return nil
}

// fileName is the stream's file in its attempt's directory. Streams have no
// '-', so the first '-' separates the stream from the job.
func (k Key) fileName() string {
	if k.Job == "" {
		return k.Stream + ".log"
	}
	return k.Stream + "-" + k.Job + ".log"
}

// parseFileName is the inverse of fileName; ok is false for other files.
func parseFileName(name string) (job, stream string, ok bool) {
	base, found := strings.CutSuffix(name, ".log")
	if !found {
		return "", "", false
	}
	stream, job, _ = strings.Cut(base, "-")
	k := Key{Build: "b", Attempt: 1, Job: job, Stream: stream}
	if k.Validate() != nil || k.fileName() != name {
		return "", "", false
	}
	return job, stream, true
}

// Stream is a stored stream with its size.
type Stream struct {
	Key
	Size int64
}
