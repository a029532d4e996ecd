package agent

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/monkeyci/monkeyci/pipeline"
)

// cacheKey is the digest of the content of a cache's key files in the job's
// container (read before it runs): the same files, the same cache. A
// missing file counts as missing, so that its arrival changes the key; a
// directory counts as every entry under it.
func cacheKey(ctx context.Context, rt Runtime, container, workDir string, files []string) (string, error) {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00", f)
		rc, err := rt.CopyFrom(ctx, container, containerPath(workDir, f))
		if errors.Is(err, ErrPathNotFound) {
			fmt.Fprint(h, "missing\x00")
			continue
		}
		if err != nil {
			return "", fmt.Errorf("reading key file %s: %w", f, err)
		}
		err = hashEntries(h, rc)
		rc.Close()
		if err != nil {
			return "", fmt.Errorf("reading key file %s: %w", f, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashEntries writes each entry of a tar stream to h: its name, kind,
// link target, size and content.
func hashEntries(h io.Writer, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%c\x00%s\x00%d\x00", path.Clean(hdr.Name), hdr.Typeflag, hdr.Linkname, hdr.Size)
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.Copy(h, tr); err != nil {
				return err
			}
		}
	}
}

// cacheName is what a cache is saved and restored under: its id, and
// the digest of its key files when it has any.
func cacheName(c pipeline.Artifact, key string) string {
	if key == "" {
		return c.ID
	}
	return c.ID + "@" + key
}
