package coordinator_test

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// The collector removes artifacts past their retention and each
// repository's least recently used caches past its bound, keeps the rest,
// and counts what it freed in /metrics.
func TestRetentionRemovesWhatIsPastIt(t *testing.T) {
	f := newFleet(t, time.Minute, func(c *coordinator.Config) {
		c.Retention = coordinator.Retention{Artifacts: 24 * time.Hour, CacheMaxSize: 250}
	})
	ctx := context.Background()
	ba, owner, _ := runningAttempt(t, f, "acme/app", "main")
	data := []byte(strings.Repeat("x", 100))
	for _, r := range []*fleet.BlobRequest{
		{Build: ba, Kind: "artifact", Id: "old"}, {Build: ba, Kind: "artifact", Id: "new"},
		{Build: ba, Kind: "cache", Id: "used"}, {Build: ba, Kind: "cache", Id: "unused"}, {Build: ba, Kind: "cache", Id: "recent"},
	} {
		if err := owner.save(ctx, said(r, data), data); err != nil {
			t.Fatal(err)
		}
	}
	// Age them as if saved long ago: the artifact "old" 2 days, the caches
	// by hours ("used" oldest, but restored just now).
	age := func(suffix string, by time.Duration) {
		t.Helper()
		var matches []string
		_ = filepath.WalkDir(filepath.Join(f.dir, "blobs", "objects"), func(p string, d os.DirEntry, err error) error {
			if err == nil && filepath.Base(p) == suffix {
				matches = append(matches, p)
			}
			return nil
		})
		if len(matches) != 1 {
			t.Fatalf("%s: %v", suffix, matches)
		}
		at := time.Now().Add(-by)
		if err := os.Chtimes(matches[0], at, at); err != nil {
			t.Fatal(err)
		}
	}
	age("old.tar", 48*time.Hour)
	age("used.tar", 3*time.Hour)
	age("unused.tar", 2*time.Hour)
	age("recent.tar", time.Hour)
	if _, _, err := owner.open(ctx, &fleet.BlobRequest{Build: ba, Kind: "cache", Id: "used"}); err != nil {
		t.Fatal(err)
	}

	got, err := f.c.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got["artifact"].Blobs != 1 || got["artifact"].Bytes != 100 || got["cache"].Blobs != 1 {
		t.Errorf("collected %+v, want one artifact and one cache", got)
	}
	for _, tc := range []struct {
		kind, id string
		kept     bool
	}{{"artifact", "old", false}, {"artifact", "new", true}, {"cache", "used", true}, {"cache", "unused", false}, {"cache", "recent", true}} {
		_, _, err := owner.open(ctx, &fleet.BlobRequest{Build: ba, Kind: tc.kind, Id: tc.id})
		if kept := err == nil; kept != tc.kept {
			t.Errorf("%s %s kept: %v (%v), want %v", tc.kind, tc.id, kept, err, tc.kept)
		}
	}
	rec := httptest.NewRecorder()
	f.c.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{`monkeyci_retention_removed_total{kind="artifact"} 1`, `monkeyci_retention_freed_bytes_total{kind="cache"} 100`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
