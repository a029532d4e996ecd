package buildscript

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"gopkg.in/yaml.v3"

	"github.com/monkeyci/monkeyci/pipeline"
)

// ConfigFile holds the script container's settings, relative to the
// repository.
const ConfigFile = ".monkeyci/script.yaml"

// maxConfigSize bounds script.yaml: a real one is three lines.
const maxConfigSize = 64 << 10

// Config is the script container's settings. Zero values keep the agent's
// defaults: its own minimal image, and its script CPUs and memory.
type Config struct {
	// Image is the script container's image.
	Image string
	// MilliCPUs and Memory (bytes) are what the script reserves and may use.
	MilliCPUs int64
	Memory    int64
	// NoSubmodules (`submodules: false`) leaves the repository's
	// submodules out of its checkout, NoLFS (`lfs: false`) its Git LFS
	// files as their pointers.
	NoSubmodules, NoLFS bool
	// Depth (`depth`) is how many commits of history the checkout holds:
	// 0 keeps the agent's default, and FullHistory (`depth: 0`) asks all.
	Depth       int
	FullHistory bool
}

// IsZero says the repository asks for no script container of its own.
func (c Config) IsZero() bool { return c.Image == "" && c.MilliCPUs == 0 && c.Memory == 0 }

// maxCPUs bounds a script's CPUs, as a job's.
const maxCPUs = 1024

var configKeys = []string{"image", "cpus", "memory", "submodules", "lfs", "depth"}

// maxDepth bounds depth: past it, ask the whole history (0).
const maxDepth = 1 << 20

// LoadConfig reads dir/.monkeyci/script.yaml; without one it returns the
// zero Config. Problems are *pipeline.Error or pipeline.Errors, each at
// .monkeyci/script.yaml:line:col.
//
// The agent reads it on its own host, before any container runs: through
// an os.Root, so that a symbolic link in the repository that leads out of
// it (to a file of the host's) is refused rather than followed.
func LoadConfig(dir string) (Config, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	defer root.Close()
	fi, err := root.Stat(ConfigFile)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w (a link must stay inside the repository)", ConfigFile, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxConfigSize {
		return Config{}, fmt.Errorf("%s: expected a regular file of at most 64 KB", ConfigFile)
	}
	data, err := root.ReadFile(ConfigFile)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	return ParseConfig(ConfigFile, data)
}

// ParseConfig reads a script.yaml named file: a mapping of image, cpus,
// memory, submodules, lfs and depth.
func ParseConfig(file string, data []byte) (Config, error) {
	var doc yaml.Node
	err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc)
	if errors.Is(err, io.EOF) {
		return Config{}, nil // empty
	}
	if err != nil {
		return Config{}, pipeline.YAMLError(file, data, err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
		return Config{}, nil
	}
	root := doc.Content[0]
	at := func(n *yaml.Node, format string, args ...any) *pipeline.Error {
		return &pipeline.Error{Pos: pipeline.Position{File: file, Line: n.Line, Column: n.Column}, Msg: fmt.Sprintf(format, args...)}
	}
	if root.Kind != yaml.MappingNode {
		return Config{}, at(root, "expected a mapping of %s", strings.Join(configKeys, ", "))
	}
	var cfg Config
	var errs pipeline.Errors
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			errs = append(errs, at(k, "%s is given twice", k.Value))
			continue
		}
		seen[k.Value] = true
		var err *pipeline.Error
		switch k.Value {
		case "image":
			cfg.Image, err = image(v, at)
		case "cpus":
			cfg.MilliCPUs, err = cpus(v, at)
		case "memory":
			cfg.Memory, err = memory(v, at)
		case "submodules":
			var with bool
			with, err = boolean(k.Value, v, at)
			cfg.NoSubmodules = !with
		case "lfs":
			var with bool
			with, err = boolean(k.Value, v, at)
			cfg.NoLFS = !with
		case "depth":
			cfg.Depth, err = depth(v, at)
			cfg.FullHistory = err == nil && cfg.Depth == 0
		default:
			err = at(k, "unknown key %q, expected one of %s", k.Value, strings.Join(configKeys, ", "))
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	switch len(errs) {
	case 0:
		return cfg, nil
	case 1:
		return Config{}, errs[0]
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Pos.Line < errs[j].Pos.Line })
	return Config{}, errs
}

type errorAt func(n *yaml.Node, format string, args ...any) *pipeline.Error

func scalar(v *yaml.Node) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		return "", false
	}
	return strings.TrimSpace(v.Value), true
}

func boolean(key string, v *yaml.Node, at errorAt) (bool, *pipeline.Error) {
	s, ok := scalar(v)
	b, err := strconv.ParseBool(s)
	if !ok || err != nil || v.Tag != "!!bool" {
		return false, at(v, "%s: expected true or false", key)
	}
	return b, nil
}

func depth(v *yaml.Node, at errorAt) (int, *pipeline.Error) {
	s, ok := scalar(v)
	n, err := strconv.Atoi(s)
	if !ok || err != nil || v.Tag != "!!int" || n < 0 || n > maxDepth {
		return 0, at(v, "depth: expected the commits of history to fetch, like 50, or 0 for all of it")
	}
	return n, nil
}

func image(v *yaml.Node, at errorAt) (string, *pipeline.Error) {
	s, ok := scalar(v)
	if !ok || s == "" {
		return "", at(v, "image: expected an image reference like monkeyci/busybox:latest")
	}
	if _, err := reference.ParseNormalizedNamed(s); err != nil {
		return "", at(v, "image: %q is not an image reference: %v", s, err)
	}
	return s, nil
}

func cpus(v *yaml.Node, at errorAt) (int64, *pipeline.Error) {
	s, ok := scalar(v)
	f, err := strconv.ParseFloat(s, 64)
	if !ok || err != nil || math.IsNaN(f) || f <= 0 || f > maxCPUs {
		return 0, at(v, "cpus: expected a number of CPUs above 0 and at most %d, like 1 or 0.5", maxCPUs)
	}
	milli := int64(math.Round(f * 1000))
	if milli < 1 {
		return 0, at(v, "cpus: %s is too small, expected at least 0.001", s)
	}
	return milli, nil
}

func memory(v *yaml.Node, at errorAt) (int64, *pipeline.Error) {
	s, ok := scalar(v)
	if !ok {
		return 0, at(v, `memory: expected a number of GB or a size like "512m" or "2g"`)
	}
	b, err := pipeline.ParseMemory(s)
	if err != nil {
		return 0, at(v, "memory: %v", err)
	}
	return b, nil
}
