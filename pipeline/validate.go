package pipeline

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// idRE is what a job, artifact or cache id may look like: ids become parts
// of container names, labels and storage paths, so no '/', blanks or "..".
var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

const idExpected = "use up to 128 letters, digits, '.', '_' and '-', starting with a letter or digit"

// ValidID says whether s may be an id: of a job, an artifact, a cache, or
// of a build or action where the agent names things after them.
func ValidID(s string) bool { return idRE.MatchString(s) }

// Validate fills the defaults still missing (ids job-N, N being the job's
// 1-based place in the build) and checks jobs alone and together: ids,
// images, scripts, resources, dependencies and cycles. Jobs may come from
// Parse or be built in code.
func Validate(jobs []Job) (*Plan, error) {
	var errs errList
	out := make([]Job, len(jobs))
	defaulted := make([]bool, len(jobs))
	var files []string
	for i, j := range jobs {
		if j.ID == "" {
			j.ID = "job-" + strconv.Itoa(i+1)
			defaulted[i] = true
		}
		applyDefaults(&j)
		for _, e := range checkJob(&j) {
			errs.addErr(e)
		}
		out[i] = j
		files = append(files, j.Source.File)
	}
	index := map[string]int{}
	for i, j := range out {
		k, dup := index[j.ID]
		if !dup {
			index[j.ID] = i
			continue
		}
		what := ""
		if defaulted[i] {
			what = " (the default id of this job)"
		}
		errs.add(j.posOf("id"), "duplicate job id %q%s, first declared at %s", j.ID, what, out[k].posOf("id"))
	}
	ids := make([]string, len(out))
	for i, j := range out {
		ids[i] = j.ID
	}
	for _, j := range out {
		for di, dep := range j.Dependencies {
			if _, ok := index[dep]; !ok && dep != "" {
				errs.add(j.posOf("dependencies."+strconv.Itoa(di)), "job %q depends on unknown job %q%s",
					j.ID, dep, suggest(dep, ids, nil))
			}
		}
	}
	for _, c := range findCycles(out, index) {
		names := make([]string, len(c.jobs))
		for i, k := range c.jobs {
			names[i] = out[k].ID
		}
		errs.add(c.pos, "dependency cycle: %s", strings.Join(names, " -> "))
	}
	if err := errs.err(files...); err != nil {
		return nil, err
	}
	return &Plan{Jobs: out}, nil
}

// applyDefaults fills what a job left unset. WorkDir stays empty: the
// runner's default.
func applyDefaults(j *Job) {
	if j.CPUs == 0 {
		j.CPUs = DefaultCPUs
	}
	if j.Memory == 0 {
		j.Memory = DefaultMemory
	}
	if j.Timeout == 0 {
		j.Timeout = DefaultTimeout
	}
	if j.Shell == "" {
		j.Shell = DefaultShell
	}
}

// posOf is where key was written, or where the job was when it was not.
func (j *Job) posOf(key string) Position {
	if p, ok := j.Pos[key]; ok {
		return p
	}
	return j.Source
}

func jobName(j *Job) string {
	if j.ID == "" {
		return "job"
	}
	return fmt.Sprintf("job %q", j.ID)
}

// checkJob checks what one job needs on its own.
func checkJob(j *Job) []*Error {
	var errs []*Error
	add := func(key, format string, args ...any) {
		errs = append(errs, &Error{Pos: j.posOf(key), Msg: fmt.Sprintf(format, args...)})
	}
	if j.ID != "" && !idRE.MatchString(j.ID) {
		add("id", "invalid id %q, %s", j.ID, idExpected)
	}
	if strings.TrimSpace(j.Image) == "" {
		if _, ok := j.Pos["image"]; ok {
			add("image", "image: must not be empty, expected an image name like \"docker.io/alpine:latest\"")
		} else {
			add("", "%s has no image, expected an \"image\" key", jobName(j))
		}
	}
	// A job without script, cmd or entrypoint runs its image's own command.
	if j.Arch != "" && j.Arch != ArchAMD && j.Arch != ArchARM {
		add("arch", "arch: unknown architecture %q, expected \"amd\" or \"arm\"", j.Arch)
	}
	for i, p := range j.Expose {
		if p < 1 || p > 65535 || slices.Index(j.Expose, p) < i {
			add("expose."+strconv.Itoa(i), "expose[%d]: port %d is out of range or listed twice, expected each port from 1 to 65535 once", i, p)
		}
	}
	if j.CreditMultiplier < 0 || j.CreditMultiplier > maxCreditMultiplier {
		add("credit-multiplier", "credit-multiplier: %d is out of range, expected 0 to 99", j.CreditMultiplier)
	}
	if !(j.CPUs >= minCPUs && j.CPUs <= maxCPUs) {
		add("cpus", "cpus: %g is out of range, expected %g to %d", j.CPUs, minCPUs, maxCPUs)
	}
	if j.Pids < 0 || j.Pids > maxPids {
		add("pids", "pids: %d is out of range, expected 1 to %d (or none: the agent's default)", j.Pids, maxPids)
	}
	if j.Memory < minMemory || j.Memory > maxMemory {
		add("memory", "memory: %d bytes is out of range, expected 6m to 4t", j.Memory)
	}
	if j.Timeout <= 0 || j.Timeout > MaxTimeout {
		add("timeout", "timeout: %v is out of range, expected more than 0 and at most %s", j.Timeout, shortDuration(MaxTimeout))
	}
	seen := map[string]bool{}
	for i, d := range j.Dependencies {
		key := "dependencies." + strconv.Itoa(i)
		switch {
		case d == "":
			add(key, "dependencies[%d]: must not be empty, expected a job id", i)
		case seen[d]:
			add(key, "dependencies[%d]: %q is listed twice", i, d)
		}
		seen[d] = true
	}
	for _, list := range []struct {
		key  string
		arts []Artifact
	}{{"save-artifacts", j.SaveArtifacts}, {"restore-artifacts", j.RestoreArtifacts}, {"caches", j.Caches}} {
		ids := map[string]bool{}
		for i, a := range list.arts {
			key := list.key + "." + strconv.Itoa(i)
			switch {
			case a.ID == "" || a.Path == "":
				add(key, "%s[%d]: id and path must not be empty, expected {id, path}", list.key, i)
			case !idRE.MatchString(a.ID):
				add(key, "%s[%d]: invalid id %q, %s", list.key, i, a.ID, idExpected)
			case ids[a.ID]:
				add(key, "%s[%d]: id %q is used twice", list.key, i, a.ID)
			}
			if a.Path != "" {
				if err := ArchivePath(a.Path); err != nil {
					add(j.pathKey(key), "%s[%d]: %v", list.key, i, err)
				}
			}
			checkKeyFiles(a.KeyFiles, func(format string, args ...any) {
				add(key, "%s[%d]: "+format, append([]any{list.key, i}, args...)...)
			})
			switch {
			case a.Build != "" && list.key != "restore-artifacts":
				add(key, "%s[%d]: only a restored artifact comes from another build", list.key, i)
			case a.Build != "" && !idRE.MatchString(a.Build):
				add(key, "%s[%d]: build %q is not a build's id", list.key, i, a.Build)
			}
			ids[a.ID] = true
		}
	}
	checkRestoresApart(j, add)
	checkWhen(j, add)
	for k := range j.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			add("env", "env: invalid name %q, expected a name without '=' or NUL", k)
		}
	}
	return errs
}

// cycle is a dependency cycle, first job repeated at the end, placed at the
// dependency that starts it.
type cycle struct {
	jobs []int
	pos  Position
}

// findCycles reports each cycle a depth-first walk meets, once, starting
// from its earliest-declared job.
func findCycles(jobs []Job, index map[string]int) []cycle {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(jobs))
	var stack []int
	var found []cycle
	seen := map[string]bool{}
	var visit func(i int)
	visit = func(i int) {
		color[i] = grey
		stack = append(stack, i)
		for _, dep := range jobs[i].Dependencies {
			k, ok := index[dep]
			if !ok {
				continue
			}
			switch color[k] {
			case white:
				visit(k)
			case grey:
				at := slices.Index(stack, k)
				c := slices.Clone(stack[at:])
				first := slices.Index(c, slices.Min(c))
				c = append(c[first:], c[:first]...)
				key := fmt.Sprint(c)
				if !seen[key] {
					seen[key] = true
					next := c[0]
					if len(c) > 1 {
						next = c[1]
					}
					pos := jobs[c[0]].Source
					if di := slices.Index(jobs[c[0]].Dependencies, jobs[next].ID); di >= 0 {
						pos = jobs[c[0]].posOf("dependencies." + strconv.Itoa(di))
					}
					found = append(found, cycle{jobs: append(c, c[0]), pos: pos})
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
	}
	for i := range jobs {
		if color[i] == white {
			visit(i)
		}
	}
	return found
}

// PrepareJob fills one job's defaults and checks it on its own, for jobs
// that arrive one at a time from a build script rather than from a file.
func PrepareJob(j Job) (Job, error) {
	applyDefaults(&j)
	var errs errList
	for _, e := range checkJob(&j) {
		errs.addErr(e)
	}
	if err := errs.err(); err != nil {
		return Job{}, err
	}
	return j, nil
}

// MaxKeyFiles bounds the files that key one cache.
const MaxKeyFiles = 32

// checkKeyFiles checks the files that key a cache: inside the work dir,
// each once.
func checkKeyFiles(files []string, add func(format string, args ...any)) {
	if len(files) > MaxKeyFiles {
		add("key-files: %d files, expected at most %d", len(files), MaxKeyFiles)
	}
	seen := map[string]bool{}
	for _, f := range files {
		if err := ArchivePath(f); err != nil {
			add("key-files: %v", err)
			continue
		}
		if seen[path.Clean(f)] {
			add("key-files: %q is listed twice", f)
		}
		seen[path.Clean(f)] = true
	}
}
