package agent

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/buildscript"
	"github.com/monkeyci/monkeyci/internal/atomicfile"
)

// settleScript waits for the source and returns the script container to
// start. The default one (spec, made while the source was fetched) is kept
// unless the repository's .monkeyci/script.yaml names another image or
// other resources; then it is removed, never started, and one like it made
// instead. A container of another image runs this agent's static binary,
// bind-mounted read-only where the agent's image has it, as `monkeyci
// script`: one path serves both.
func (b *build) settleScript(fetched *fetching, spec ContainerSpec, id string) (string, error) {
	b.script = b.r.cfg.Script
	if err := fetched.wait(); err != nil {
		return "", fmt.Errorf("fetching the source: %w", err)
	}
	if b.spec.Source == "" {
		return id, nil
	}
	// A repository that defines its build twice, or not at all, is told
	// here, as the build's error, rather than from inside a script
	// container started for nothing.
	bs, err := buildscript.Detect(b.spec.Source)
	if err != nil {
		return "", err
	}
	b.kind = bs.Kind
	sc, err := buildscript.LoadConfig(b.spec.Source)
	if err != nil {
		return "", err
	}
	if sc.IsZero() {
		return id, nil
	}
	if sc.MilliCPUs > 0 {
		b.script.MilliCPUs = sc.MilliCPUs
	}
	if sc.Memory > 0 {
		b.script.Memory = sc.Memory
	}
	if err := b.r.cfg.Ledger.CanEverFit(b.script, Resources{}); err != nil {
		return "", fmt.Errorf("the script container (%s) %w", buildscript.ConfigFile, err)
	}
	ctx, rt := b.ctx, b.r.cfg.Runtime
	spec.NanoCPUs, spec.Memory = b.script.MilliCPUs*1e6, b.script.Memory
	if sc.Image != "" {
		if err := rt.EnsureImage(ctx, sc.Image); err != nil {
			return "", fmt.Errorf("the script image named in %s: %w", buildscript.ConfigFile, err)
		}
		bin, err := b.r.scriptBinary()
		if err != nil {
			return "", err
		}
		spec.Image = sc.Image
		spec.Entrypoint, spec.Cmd = []string{}, []string{engine.BinaryPath, "script"}
		spec.Mounts = append(slices.Clone(spec.Mounts), Mount{Source: bin, Target: engine.BinaryPath, ReadOnly: true})
	}
	if err := rt.Remove(ctx, id); err != nil {
		return "", fmt.Errorf("removing the default script container: %w", err)
	}
	id, err = b.create(spec)
	if err != nil {
		return "", fmt.Errorf("script container: %w", err)
	}
	return id, nil
}

// scriptBinary returns a copy of the agent's binary in its state
// directory, made once, to bind-mount into script containers of other
// images. A copy, not the binary itself: the state directory is where the
// engine finds what the agent mounts (an agent in a container has it at the
// same path as the host), and a copy named by its hash never changes under
// a running build.
func (r *Runner) scriptBinary() (string, error) {
	r.imageMu.Lock()
	defer r.imageMu.Unlock()
	if r.binary != "" {
		return r.binary, nil
	}
	sum, err := engine.ShortHash(r.cfg.Binary)
	if err != nil {
		return "", fmt.Errorf("the agent's binary: %w", err)
	}
	path := filepath.Join(r.cfg.StateDir, "bin", sum, "monkeyci")
	if _, err := os.Stat(path); err != nil {
		if err := copyExecutable(r.cfg.Binary, path); err != nil {
			return "", fmt.Errorf("copying the agent's binary for script containers: %w", err)
		}
	}
	r.binary = path
	return path, nil
}

// copyExecutable copies src to dst through a temporary file, so dst is
// whole or absent.
func copyExecutable(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, 0o755, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}
