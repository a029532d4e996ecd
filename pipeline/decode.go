package pipeline

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// decodeJobs turns the top-level values of one file into jobs: each is a job
// (a map) or a list of jobs. Problems go to errs; a job with any is dropped.
func decodeJobs(roots []*node, errs *errList) []Job {
	var jobs []Job
	add := func(n *node) {
		if n.kind != kMap {
			errs.add(n.pos, "expected a job (a map), got %s", n.describe())
			return
		}
		if j, ok := decodeJob(n, errs); ok {
			jobs = append(jobs, j)
		}
	}
	for _, root := range roots {
		switch root.kind {
		case kMap:
			add(root)
		case kList:
			if len(root.items) == 0 {
				errs.add(root.pos, "empty list of jobs, expected at least one job")
			}
			for _, item := range root.items {
				add(item)
			}
		default:
			errs.add(root.pos, "expected a job (a map) or a list of jobs, got %s", root.describe())
		}
	}
	return jobs
}

// jobDecoder fills one Job from its map, remembering which resource keys
// were written so that explicit cpus/memory win over size.
type jobDecoder struct {
	errs               *errList
	job                Job
	size               int
	hasCPUs, hasMemory bool
	// imageKey is the key that named the image first: "image", or
	// "container/image" (MonkeyCI's v1 name for it).
	imageKey string
}

func decodeJob(m *node, errs *errList) (Job, bool) {
	before := errs.len()
	d := &jobDecoder{errs: errs, job: Job{Source: m.pos, Pos: map[string]Position{}}}
	seen := map[string]*node{}
	for i, k := range m.keys {
		name, ok := keyName(k)
		if !ok {
			errs.add(k.pos, "expected a key (a string or keyword), got %s", k.describe())
			continue
		}
		key := canonKey(name)
		if prev, dup := seen[key]; dup {
			errs.add(k.pos, "duplicate key %q (first at %d:%d)", name, prev.pos.Line, prev.pos.Column)
			continue
		}
		seen[key] = k
		if !d.field(key, name, m.vals[i]) {
			if key == "jobs" {
				errs.add(k.pos, "unknown key %q: a build file holds one job (a map) or a list of jobs", name)
			} else {
				errs.add(k.pos, "unknown key %q%s", name, suggest(name, jobKeys, keyHints))
			}
		}
	}
	if errs.len() > before {
		return Job{}, false
	}
	j := d.job
	if d.size > 0 {
		cpus, mem := sizeResources(d.size)
		if !d.hasCPUs {
			j.CPUs = cpus
		}
		if !d.hasMemory {
			j.Memory = mem
		}
	}
	applyDefaults(&j)
	for _, e := range checkJob(&j) {
		errs.addErr(e)
	}
	return j, errs.len() == before
}

// field decodes one key; false when the key is unknown.
func (d *jobDecoder) field(key, name string, v *node) bool {
	j := &d.job
	j.Pos[key] = v.pos
	switch key {
	case "id":
		j.ID, _ = d.str(name, v)
	case "image", "container/image":
		if d.imageKey != "" {
			d.errs.add(v.pos, "%s: the image is given twice (as %q too): keep one", name, d.imageKey)
			break
		}
		d.imageKey = name
		j.Image, _ = d.str(name, v)
		j.Pos["image"] = v.pos
	case "type":
		d.jobType(name, v)
	case "arch":
		j.Arch = d.arch(name, v)
	case "expose":
		j.Expose = d.ports(name, v)
		d.itemPositions(key, v)
	case "credit-multiplier":
		j.CreditMultiplier = d.creditMultiplier(name, v)
	case "script":
		j.Script = d.strList(name, v, true)
	case "dependencies":
		j.Dependencies = d.strList(name, v, false)
		d.itemPositions(key, v)
	case "save-artifacts":
		j.SaveArtifacts = d.artifacts(key, name, v)
	case "restore-artifacts":
		j.RestoreArtifacts = d.artifacts(key, name, v)
	case "caches":
		j.Caches = d.artifacts(key, name, v)
	case "size":
		if n, ok := d.count(name, v); ok {
			d.size = n
		}
	case "cpus":
		d.hasCPUs = true
		j.CPUs = d.cpus(name, v)
	case "pids":
		j.Pids = d.pids(name, v)
	case "memory":
		d.hasMemory = true
		j.Memory = d.memory(name, v)
	case "env":
		j.Env = d.strMap(name, v, true)
	case "labels":
		j.Labels = d.strMap(name, v, false)
	case "work-dir":
		j.WorkDir, _ = d.str(name, v)
	case "timeout":
		j.Timeout = d.timeout(name, v)
	case "shell":
		j.Shell, _ = d.str(name, v)
	case "entrypoint":
		j.Entrypoint = d.strList(name, v, false)
	case "cmd":
		j.Cmd = d.strList(name, v, false)
	case "blocked":
		if v.kind != kBool {
			d.errs.add(v.pos, "%s: expected true or false, got %s", name, v.describe())
		}
		j.Blocked = v.b
	case "when":
		j.When = d.when(v)
	default:
		delete(j.Pos, key)
		return false
	}
	return true
}

// word reads a string or an EDN keyword (:arm).
func (d *jobDecoder) word(what string, v *node) (string, bool) {
	if v.kind == kKeyword || v.kind == kString {
		return v.text, true
	}
	d.errs.add(v.pos, "%s: expected a word, got %s", what, v.describe())
	return "", false
}

// jobType reads MonkeyCI's job type: a build file holds container jobs;
// action jobs are code, which only a build script has.
func (d *jobDecoder) jobType(what string, v *node) {
	t, ok := d.word(what, v)
	switch {
	case !ok || t == "container":
	case t == "action":
		d.errs.add(v.pos, "%s: action jobs run code, so they need a build script (.monkeyci/build, see docs/job-api.md); a build file holds container jobs", what)
	default:
		d.errs.add(v.pos, "%s: unknown job type %q, expected \"container\"", what, t)
	}
}

// archAliases are other names of MonkeyCI's two architectures, said in
// the error rather than taken: one name for each keeps labels comparable.
var archAliases = map[string]string{
	"amd64": ArchAMD, "x86_64": ArchAMD, "x86-64": ArchAMD, "intel": ArchAMD,
	"arm64": ArchARM, "aarch64": ArchARM,
}

func (d *jobDecoder) arch(what string, v *node) string {
	a, ok := d.word(what, v)
	switch {
	case !ok:
	case a == ArchAMD || a == ArchARM:
		return a
	case archAliases[strings.ToLower(a)] != "":
		d.errs.add(v.pos, "%s: %q is called %q here, expected \"amd\" or \"arm\"", what, a, archAliases[strings.ToLower(a)])
	default:
		d.errs.add(v.pos, "%s: unknown architecture %q, expected \"amd\" or \"arm\"", what, a)
	}
	return ""
}

// creditMultiplier reads a whole number from 0 to 99, as MonkeyCI takes it.
func (d *jobDecoder) creditMultiplier(what string, v *node) int {
	n, ok := whole(v)
	switch {
	case v.kind != kInt && v.kind != kFloat:
		d.errs.add(v.pos, "%s: expected a whole number from 0 to 99, got %s", what, v.describe())
	case !ok || n < 0 || n > maxCreditMultiplier:
		d.errs.add(v.pos, "%s: %s is out of range, expected a whole number from 0 to 99", what, v.text)
	default:
		return int(n)
	}
	return 0
}

// ports reads expose: a list of TCP ports (or one port), each once.
func (d *jobDecoder) ports(what string, v *node) []int {
	items := v.items
	if v.kind != kList {
		items = []*node{v}
	}
	var out []int
	for i, item := range items {
		n, ok := whole(item)
		switch {
		case item.kind != kInt && item.kind != kFloat:
			d.errs.add(item.pos, "%s[%d]: expected a port number, got %s", what, i, item.describe())
		case !ok || n < 1 || n > 65535:
			d.errs.add(item.pos, "%s[%d]: port %s is out of range, expected 1 to 65535", what, i, item.text)
		case slices.Contains(out, int(n)):
			d.errs.add(item.pos, "%s[%d]: port %d is listed twice", what, i, n)
		default:
			out = append(out, int(n))
		}
	}
	return out
}

func (d *jobDecoder) itemPositions(key string, v *node) {
	if v.kind != kList {
		d.job.Pos[key+".0"] = v.pos // one value written as a list of one
	}
	for i, item := range v.items {
		d.job.Pos[key+"."+strconv.Itoa(i)] = item.pos
	}
}

// scalarText is the text of a string, number or bool; other values have none.
func scalarText(v *node) (string, bool) {
	switch v.kind {
	case kString, kInt, kFloat:
		return v.text, true
	case kBool:
		return strconv.FormatBool(v.b), true
	}
	return "", false
}

// str reads a string; numbers and bools count as their text (image: 3.12).
func (d *jobDecoder) str(what string, v *node) (string, bool) {
	s, ok := scalarText(v)
	if !ok {
		d.errs.add(v.pos, "%s: expected a string, got %s", what, v.describe())
	}
	return s, ok
}

// strList reads a list of strings, or one string as a list of one.
func (d *jobDecoder) strList(what string, v *node, script bool) []string {
	if s, ok := scalarText(v); ok {
		return []string{s}
	}
	if v.kind != kList {
		d.errs.add(v.pos, "%s: expected a list of strings, got %s", what, v.describe())
		return nil
	}
	var out []string // nil when empty, whatever the format
	for i, item := range v.items {
		s, ok := scalarText(item)
		if !ok {
			hint := ""
			if script && item.kind == kMap {
				hint = ` (in YAML, quote a line that contains ": ")`
			}
			d.errs.add(item.pos, "%s[%d]: expected a string, got %s%s", what, i, item.describe(), hint)
		}
		out = append(out, s)
	}
	return out
}

// strMap reads env or labels: scalar keys and values, values as text.
func (d *jobDecoder) strMap(what string, v *node, env bool) map[string]string {
	if v.kind != kMap {
		d.errs.add(v.pos, "%s: expected a map of names to values, got %s", what, v.describe())
		return nil
	}
	out := make(map[string]string, len(v.keys))
	for i, k := range v.keys {
		name, ok := scalarText(k)
		if k.kind == kKeyword {
			name, ok = k.text, true
		}
		switch {
		case !ok:
			d.errs.add(k.pos, "%s: expected a name, got %s", what, k.describe())
			continue
		case name == "":
			d.errs.add(k.pos, "%s: names must not be empty", what)
			continue
		case env && strings.ContainsAny(name, "=\x00"):
			d.errs.add(k.pos, "%s: name %q must not contain '=' or NUL", what, name)
			continue
		}
		if _, dup := out[name]; dup {
			d.errs.add(k.pos, "%s: duplicate name %q", what, name)
			continue
		}
		val, ok := scalarText(v.vals[i])
		if !ok {
			d.errs.add(v.vals[i].pos, "%s.%s: expected a string, number or bool, got %s", what, name, v.vals[i].describe())
			continue
		}
		if env && strings.ContainsRune(val, 0) {
			d.errs.add(v.vals[i].pos, "%s.%s: value must not contain NUL", what, name)
			continue
		}
		out[name] = val
	}
	if len(out) == 0 {
		return nil // as if absent, whatever the format
	}
	return out
}

// whole reads a whole number, allowing 2.0.
func whole(v *node) (int64, bool) {
	switch {
	case v.kind == kInt && !v.big:
		return v.i, true
	case v.kind == kFloat && v.f == math.Trunc(v.f) && math.Abs(v.f) < 1<<53:
		return int64(v.f), true
	}
	return 0, false
}

// cpus reads a number of CPUs: above 0 (at least a thousandth, like
// scripts' cpus) and at most maxCPUs; 0.25 is a quarter of one.
func (d *jobDecoder) cpus(what string, v *node) float64 {
	f := v.f
	switch v.kind {
	case kInt:
		f = float64(v.i)
		if v.big {
			f = math.Inf(1)
		}
	case kFloat:
	default:
		d.errs.add(v.pos, "%s: expected a number of CPUs like 1 or 0.25, got %s", what, v.describe())
		return 0
	}
	switch {
	case math.IsNaN(f) || f <= 0 || strings.HasPrefix(v.text, "-"):
		d.errs.add(v.pos, "%s: must be above 0, got %s", what, v.text)
	case f < minCPUs:
		d.errs.add(v.pos, "%s: %s is too small, expected at least %g", what, v.text, minCPUs)
	case f > maxCPUs:
		d.errs.add(v.pos, "%s: %s is too large, expected at most %d", what, v.text, maxCPUs)
	default:
		return f
	}
	return 0
}

// pids reads a job's process limit: a whole number from 1 to maxPids.
func (d *jobDecoder) pids(what string, v *node) int64 {
	n, _ := d.wholeIn(what, v, maxPids, "a whole number of processes")
	return n
}

// count reads size: a whole number from 1 to maxCPUs.
func (d *jobDecoder) count(what string, v *node) (int, bool) {
	n, ok := d.wholeIn(what, v, maxCPUs, "a whole number")
	return int(n), ok
}

// wholeIn reads a whole number from 1 to most; want names what is expected
// in errors.
func (d *jobDecoder) wholeIn(what string, v *node, most int64, want string) (int64, bool) {
	n, ok := whole(v)
	num := v.kind == kInt || v.kind == kFloat
	negative := num && (v.f < 0 || strings.HasPrefix(v.text, "-"))
	switch {
	case !num:
		d.errs.add(v.pos, "%s: expected %s, got %s", what, want, v.describe())
	case ok && n < 1, !ok && negative:
		d.errs.add(v.pos, "%s: must be at least 1, got %s", what, v.text)
	case ok && n > most, !ok && (v.big || math.IsInf(v.f, 0) || math.Abs(v.f) >= 1<<53):
		d.errs.add(v.pos, "%s: %s is too large, expected at most %d", what, v.text, most)
	case !ok:
		d.errs.add(v.pos, "%s: expected %s, got %s", what, want, v.text)
	default:
		return n, true
	}
	return 0, false
}

func (d *jobDecoder) memory(what string, v *node) int64 {
	var b int64
	var err error
	switch v.kind {
	case kInt, kFloat:
		f := v.f
		if v.kind == kInt {
			f = float64(v.i)
			if v.big {
				f = math.Inf(1)
			}
		}
		b, err = memoryBytes(f*gb, v.text)
	case kString:
		b, err = ParseMemory(v.text)
	default:
		err = fmt.Errorf("%s, got %s", memoryExpected, v.describe())
	}
	if err != nil {
		d.errs.add(v.pos, "%s: %v", what, err)
	}
	return b
}

func (d *jobDecoder) timeout(what string, v *node) time.Duration {
	var t time.Duration
	var err error
	switch v.kind {
	case kInt, kFloat:
		f := v.f
		if v.kind == kInt {
			f = float64(v.i)
			if v.big {
				f = math.Inf(1)
			}
		}
		t, err = timeoutSeconds(f, v.text)
	case kString:
		t, err = parseTimeout(v.text)
	default:
		err = fmt.Errorf("expected a duration like \"10m\" or a number of seconds, got %s", v.describe())
	}
	if err != nil {
		d.errs.add(v.pos, "%s: %v", what, err)
	}
	return t
}

// artifacts reads a list of {id, path} maps (or one map).
func (d *jobDecoder) artifacts(key, what string, v *node) []Artifact {
	items := v.items
	switch v.kind {
	case kMap:
		items = []*node{v}
	case kList:
	default:
		d.errs.add(v.pos, "%s: expected a list of {id, path} maps, got %s", what, v.describe())
		return nil
	}
	var out []Artifact
	for i, item := range items {
		d.job.Pos[key+"."+strconv.Itoa(i)] = item.pos
		if item.kind != kMap {
			d.errs.add(item.pos, "%s[%d]: expected a map with id and path, got %s", what, i, item.describe())
			continue
		}
		var a Artifact
		var hasID, hasPath bool
		for k, kn := range item.keys {
			name, ok := keyName(kn)
			if !ok {
				d.errs.add(kn.pos, "%s[%d]: expected a key (a string or keyword), got %s", what, i, kn.describe())
				continue
			}
			val := item.vals[k]
			switch canonKey(name) {
			case "id":
				if hasID {
					d.errs.add(kn.pos, "%s[%d]: duplicate key %q", what, i, name)
				}
				hasID = true
				a.ID, _ = d.str(what+"["+strconv.Itoa(i)+"].id", val)
			case "path":
				if hasPath {
					d.errs.add(kn.pos, "%s[%d]: duplicate key %q", what, i, name)
				}
				hasPath = true
				d.job.Pos[key+"."+strconv.Itoa(i)+".path"] = val.pos
				a.Path, _ = d.str(what+"["+strconv.Itoa(i)+"].path", val)
			case "key-files":
				if key != "caches" {
					d.errs.add(kn.pos, "%s[%d]: key-files keys a cache, not an artifact", what, i)
					break
				}
				d.job.Pos[key+"."+strconv.Itoa(i)+".key-files"] = val.pos
				a.KeyFiles = d.strList(what+"["+strconv.Itoa(i)+"].key-files", val, false)
			default:
				known := artifactKeys
				if key == "caches" {
					known = cacheKeys
				}
				d.errs.add(kn.pos, "%s[%d]: unknown key %q%s", what, i, name, suggest(name, known, nil))
			}
		}
		switch {
		case !hasID && !hasPath:
			d.errs.add(item.pos, "%s[%d]: missing \"id\" and \"path\", expected {id, path}", what, i)
		case !hasID:
			d.errs.add(item.pos, "%s[%d]: missing \"id\", expected {id, path}", what, i)
		case !hasPath:
			d.errs.add(item.pos, "%s[%d]: missing \"path\", expected {id, path}", what, i)
		}
		out = append(out, a)
	}
	return out
}
