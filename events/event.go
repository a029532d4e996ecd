// Package events holds the event vocabulary shared by the agent, the sidecar,
// the coordinator and the command line (MonkeyCI's names), and its encodings.
// It is pure: no I/O.
package events

import (
	"fmt"
	"strings"
	"time"
)

// Type names what happened, as "<subject>/<what>".
type Type string

// Build events.
const (
	BuildQueued       Type = "build/queued"
	BuildPending      Type = "build/pending"
	BuildInitializing Type = "build/initializing"
	BuildStart        Type = "build/start"
	BuildEnd          Type = "build/end"
	BuildCanceled     Type = "build/canceled"
)

// Script container events.
const (
	ScriptInitializing Type = "script/initializing"
	ScriptStart        Type = "script/start"
	ScriptEnd          Type = "script/end"
	ScriptPaused       Type = "script/paused"
	ScriptResumed      Type = "script/resumed"
)

// Job events.
const (
	JobPending      Type = "job/pending"
	JobQueued       Type = "job/queued"
	JobInitializing Type = "job/initializing"
	JobStart        Type = "job/start"
	JobExecuted     Type = "job/executed"
	JobEnd          Type = "job/end"
	JobSkipped      Type = "job/skipped"
	JobBlocked      Type = "job/blocked"
	JobUnblocked    Type = "job/unblocked"
	// JobReady: a service accepts connections on every port it exposes;
	// the jobs that depend on it start.
	JobReady Type = "job/ready"
)

// Job container events, written by the job wrapper (the sidecar protocol).
const (
	ContainerStart     Type = "container/start"
	ContainerScriptEnd Type = "container/script-end"
	CommandStart       Type = "command/start"
	CommandEnd         Type = "command/end"
)

// Pool decisions, made by the coordinator's autoscaler (coordinator/pool).
const (
	PoolScaleUp Type = "pool/scale-up"
	PoolScaleIn Type = "pool/scale-in"
	// PoolDestroy: an instance was destroyed, drained or never joined.
	PoolDestroy Type = "pool/destroy"
)

// Result is how a build, script or job ended.
type Result string

// Results.
const (
	Success  Result = "success"
	Failure  Result = "failure"
	Error    Result = "error"
	Canceled Result = "canceled"
	Skipped  Result = "skipped"
)

// SkipReason is the message of a job skipped because dep, a job it depends
// on, ended with result: one wording wherever a skip is decided (agent,
// declarative driver, SDK).
func SkipReason(dep string, result Result) string {
	return "dependency " + dep + " ended with " + string(result)
}

// Event is one thing that happened to a build. Fields that do not apply to a
// type stay zero and are left out of every encoding.
type Event struct {
	Type  Type      `json:"type"`
	Time  time.Time `json:"time,omitzero"`
	Build string    `json:"build,omitempty"`
	Job   string    `json:"job,omitempty"`

	// Command is the index of a script line ("0", "1", ...) for command/* events.
	Command string `json:"command,omitempty"`
	// Line is the command's text (its script line), on command/start.
	Line string `json:"line,omitempty"`
	// Stdout and Stderr are the paths of a command's log files.
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	// Exit is a command's, job's or script's exit code, when it has one.
	Exit *int `json:"exit,omitempty"`
	// Status is the result of a */end event and of container/script-end.
	Status Result `json:"status,omitempty"`
	// Step is the index of the failing line in container/script-end.
	Step string `json:"step,omitempty"`
	// Done marks the last event of a job container's log.
	Done bool `json:"done,omitempty"`
	// Deps are a job's dependencies, on job/queued: the job graph as the
	// script builds it, for those who draw it.
	Deps []string `json:"deps,omitempty"`
	// Action marks, on job/queued, a job that is an action: work the script
	// does in its own container (a `job action` command, the SDK's Action),
	// with no container of its own.
	Action bool `json:"action,omitempty"`
	// Expose are, on job/queued, the ports of a job that is a service: it
	// serves them to the build's other jobs, which reach it by its id.
	Expose []int `json:"expose,omitempty"`
	// Caches are a job's caches on job/start: the scope each is saved to
	// and the one it was restored from.
	Caches []Cache `json:"caches,omitempty"`
	// Message says why, in words, for errors, skips and refusals.
	Message string `json:"message,omitempty"`
	// Duration is how long the subject took: for */end events the whole of
	// it, for script/resumed the pause, for script/paused the time from the
	// await to the frozen container.
	Duration time.Duration `json:"duration,omitempty"`
}

// Cache is one cache of a job: its id, the scope the job saves it to, and
// the scope it was restored from ("" when none held it yet), with its
// size, whether it was fetched from the fleet's store (or found on the
// agent), and how long restoring it took.
type Cache struct {
	ID string `json:"id"`
	// Key is the digest of the cache's key files (none: "").
	Key     string        `json:"key,omitempty"`
	Scope   string        `json:"scope"`
	From    string        `json:"from,omitempty"`
	Size    int64         `json:"size,omitempty"`
	Fetched bool          `json:"fetched,omitempty"`
	Took    time.Duration `json:"took,omitempty"`
}

// ExitCode returns a pointer to code, for Event.Exit.
func ExitCode(code int) *int { return &code }

// DescribeCaches says in words where a job's caches came from and go:
// "caches: deps branch:feature (restored from branch:main), m2 pr:7 (none
// yet)". "" for none.
func DescribeCaches(cs []Cache) string {
	if len(cs) == 0 {
		return ""
	}
	parts := make([]string, 0, len(cs))
	for _, c := range cs {
		from := "none yet"
		if c.From != "" {
			from = "restored from " + c.From
			if c.Size > 0 {
				where := "on the agent"
				if c.Fetched {
					where = "fetched"
				}
				from += fmt.Sprintf(", %s %s in %s", sizeWords(c.Size), where, c.Took.Round(time.Millisecond))
			}
		}
		id := c.ID
		if len(c.Key) >= 12 {
			id += "@" + c.Key[:12]
		}
		parts = append(parts, id+" "+c.Scope+" ("+from+")")
	}
	return "caches: " + strings.Join(parts, ", ")
}

// sizeWords writes n bytes the way people read them.
func sizeWords(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
