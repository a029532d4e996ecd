package engine

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	pathpkg "path"
	"strings"
)

// BinaryPath is where the agent's binary is in its own image (the default
// script image) and where a script container of another image has it
// mounted.
const BinaryPath = "/opt/monkeyci/bin/monkeyci"

// agentImageRepo names the agent's image; the tag is its binary's ShortHash.
const agentImageRepo = "monkeyci/agent"

// EnsureAgentImage makes an image holding only the static binary, named by
// the binary's hash so a new build of the binary gets a new image, and
// returns its reference. No registry is involved: the image is imported
// from a tar made here. The docker pool runs its agents from it too.
func EnsureAgentImage(ctx context.Context, rt Runtime, binary string) (string, error) {
	tag, err := ShortHash(binary)
	if err != nil {
		return "", fmt.Errorf("agent image: %w", err)
	}
	ref := agentImageRepo + ":" + tag
	ok, err := rt.HasImage(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("agent image: %w", err)
	}
	if ok {
		return ref, nil
	}
	if err := ImportBinaryImage(ctx, rt, ref, binary, BinaryPath); err != nil {
		return "", fmt.Errorf("agent image: %w", err)
	}
	return ref, nil
}

// ImportBinaryImage makes image ref whose file system holds only a static
// binary at path, its entrypoint, and the empty directories a script
// container mounts over.
func ImportBinaryImage(ctx context.Context, rt Runtime, ref, binary, path string) error {
	pr, pw := io.Pipe()
	defer pr.Close() // an import that stopped reading ends the writer too
	go func() { pw.CloseWithError(writeBinaryRootfs(pw, binary, path)) }()
	if err := rt.ImportImage(ctx, ref, pr, []string{path}); err != nil {
		pr.CloseWithError(err)
		return fmt.Errorf("importing %s: %w", ref, err)
	}
	return nil
}

// ShortHash names a file by its content: the first 12 hex digits of its
// sha256, enough to tell builds of the agent's binary apart.
func ShortHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

func writeBinaryRootfs(w io.Writer, binary, path string) error {
	f, err := os.Open(binary)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	dirs := []string{"tmp/", "workspace/", "run/", "run/monkeyci/"}
	parent := ""
	for _, part := range strings.Split(strings.Trim(pathpkg.Dir(path), "/"), "/") {
		if part != "" {
			parent += part + "/"
			dirs = append(dirs, parent)
		}
	}
	for _, d := range dirs {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(path, "/"), Mode: 0o755, Size: st.Size()}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, f); err != nil {
		return err
	}
	return tw.Close()
}
