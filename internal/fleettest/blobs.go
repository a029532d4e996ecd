package fleettest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/monkeyci/monkeyci/coordinator/blob"
	"github.com/monkeyci/monkeyci/internal/s3test"
)

// EachBlobStore runs test as subtests against a blob store in a folder,
// and one in an S3 server (skipped where versitygw is missing).
func EachBlobStore(t *testing.T, test func(t *testing.T, blobs blob.Store)) {
	t.Run("Dir", func(t *testing.T) {
		d, err := blob.OpenDir(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		test(t, d)
	})
	t.Run("S3", func(t *testing.T) {
		srv := s3test.Start(t)
		c, err := blob.ParseS3URL(srv.URL())
		if err != nil {
			t.Fatal(err)
		}
		c.AccessKey, c.SecretKey = srv.AccessKey, srv.SecretKey
		s, err := blob.OpenS3(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		test(t, s)
	})
}
