// Package pipeline turns build files into a validated job graph and keeps the
// graph's scheduling state. It is pure: no I/O beyond reading the files it is
// given, no containers, no network.
package pipeline

import (
	"math"
	"time"
)

// Defaults of a job, as MonkeyCI documents them.
const (
	DefaultCPUs    = 1
	DefaultMemory  = 2 << 30 // bytes: 2 GB per CPU of size
	DefaultTimeout = 20 * time.Minute
	MaxTimeout     = 6 * time.Hour
	DefaultWorkDir = "/workspace"
	DefaultShell   = "sh"
)

// Position is where something was written: file, 1-based line and column.
type Position struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
}

// Artifact names a path in a job's container that is saved or restored under an id.
type Artifact struct {
	ID   string `json:"id"`
	Path string `json:"path"`
	// KeyFiles, of a cache only, key it by their content (paths relative
	// to the work dir, read before the job runs): a change of any makes
	// a new cache.
	KeyFiles []string `json:"key-files,omitempty"`
	// Build, of a restored artifact only, is the earlier build of the
	// repository that saved it (its whole id); "": this build.
	Build string `json:"build,omitempty"`
}

// Job is one container job of a build, with every default filled in.
type Job struct {
	ID               string     `json:"id"`
	Image            string     `json:"image"`
	Script           []string   `json:"script,omitempty"`
	Dependencies     []string   `json:"dependencies,omitempty"`
	SaveArtifacts    []Artifact `json:"save-artifacts,omitempty"`
	RestoreArtifacts []Artifact `json:"restore-artifacts,omitempty"`
	Caches           []Artifact `json:"caches,omitempty"`
	// CPUs may be a fraction (0.25); the agent reads it in thousandths.
	CPUs   float64 `json:"cpus"`
	Memory int64   `json:"memory"` // bytes
	// Pids bounds the processes of the job's container; 0: the agent's
	// default (its --pids, which is also the most a job may ask).
	Pids       int64             `json:"pids,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	WorkDir    string            `json:"work-dir,omitempty"`
	Timeout    time.Duration     `json:"timeout"`
	Shell      string            `json:"shell,omitempty"`
	Entrypoint []string          `json:"entrypoint,omitempty"`
	Cmd        []string          `json:"cmd,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Blocked    bool              `json:"blocked,omitempty"`
	// Arch is the machine architecture the job's image needs, "amd" or
	// "arm" (MonkeyCI's names); empty: whatever the agent has.
	Arch string `json:"arch,omitempty"`
	// Expose lists the ports the job serves to the other jobs of its build:
	// it makes the job a service (Service).
	Expose []int `json:"expose,omitempty"`
	// CreditMultiplier weighs the job's cost in credits (MonkeyCI's
	// metering); 0: the default weight.
	CreditMultiplier int `json:"credit-multiplier,omitempty"`
	// When, if set, says on which builds the job runs (when.go).
	When *When `json:"when,omitempty"`
	// Source is where the job was declared; not part of the job's meaning.
	Source Position `json:"-"`
	// Pos is where each key's value was written, by kebab-case key, and
	// list entries as "dependencies.0", "save-artifacts.1", ...; nil for
	// jobs built in code. It lets Validate point at the offending value.
	Pos map[string]Position `json:"-"`
}

// Machine architectures a job may ask for, as MonkeyCI names them.
const (
	ArchAMD = "amd"
	ArchARM = "arm"
)

// ArchOf is MonkeyCI's name of a Go architecture (runtime.GOARCH): amd64
// is "amd", arm64 "arm"; any other keeps its Go name.
func ArchOf(goarch string) string {
	switch goarch {
	case "amd64":
		return ArchAMD
	case "arm64":
		return ArchARM
	}
	return goarch
}

// Service says whether the job serves ports to the other jobs of its build:
// its dependents start once those ports accept connections, and it is
// stopped when they have all ended.
func (j Job) Service() bool { return len(j.Expose) > 0 }

// MilliCPUs is the job's CPUs in thousandths, as the agent counts them.
func (j Job) MilliCPUs() int64 { return int64(math.Round(j.CPUs * 1000)) }

// Plan is a build's validated jobs in declaration order: files in the order
// build.yaml, build.yml, build.json, build.edn; jobs in file order.
type Plan struct {
	Jobs []Job `json:"jobs"`
	// Files are the build files Load read, in order.
	Files []string `json:"files,omitempty"`
}

// Job returns the job with the given id.
func (p *Plan) Job(id string) (Job, bool) {
	for _, j := range p.Jobs {
		if j.ID == id {
			return j, true
		}
	}
	return Job{}, false
}
