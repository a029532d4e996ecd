package blob

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
)

// Open opens the store a --blobs URL names: file:///DIR (a relative path
// is taken from dataDir); s3://BUCKET?endpoint=HOST:PORT[&region=R]
// [&insecure=1] with the keys in AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (or the machine's role); or
// oci://NAMESPACE/BUCKET[?region=R][&config=FILE][&profile=P]
// [&principal=instance][&endpoint=URL] with an OCI API key from the
// config file (default ~/.oci/config, profile DEFAULT) or the instance's
// principal. "" is the default: a folder "blobs" in dataDir.
func Open(ctx context.Context, raw, dataDir string) (Store, error) {
	if raw == "" {
		return OpenDir(filepath.Join(dataDir, "blobs"))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("blob store URL %q: %w", raw, err)
	}
	switch u.Scheme {
	case "file":
		dir := filepath.FromSlash(u.Host + u.Path)
		if dir == "" {
			return nil, fmt.Errorf("blob store URL %q: expected file:///DIR", raw)
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(dataDir, dir)
		}
		return OpenDir(dir)
	case "s3":
		c, err := ParseS3URL(raw)
		if err != nil {
			return nil, err
		}
		return OpenS3(ctx, c)
	case "oci":
		c, err := ParseOCIURL(raw)
		if err != nil {
			return nil, err
		}
		return OpenOCI(ctx, c)
	}
	return nil, fmt.Errorf("blob store URL %q: expected file:///DIR, s3://BUCKET?endpoint=HOST:PORT or oci://NAMESPACE/BUCKET", raw)
}
