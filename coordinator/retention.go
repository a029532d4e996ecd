package coordinator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/monkeyci/monkeyci/coordinator/blob"
)

// Retention says how long the blob store keeps what builds leave: past
// it, the collector removes them.
type Retention struct {
	// Artifacts and Logs are kept this long after they were saved (0:
	// for ever).
	Artifacts, Logs time.Duration
	// CacheMaxSize bounds each repository's caches (bytes; 0: no bound):
	// past it the least recently used go.
	CacheMaxSize int64
	// Every is the time between collections (default an hour).
	Every time.Duration
}

// DefaultRetention is 30 days of artifacts and logs, and 10 GB of caches
// per repository.
var DefaultRetention = Retention{Artifacts: 30 * 24 * time.Hour, Logs: 30 * 24 * time.Hour, CacheMaxSize: 10 << 30, Every: time.Hour}

// Collected is what one collection removed, by kind (artifact, log,
// cache): how many blobs and how many bytes.
type Collected map[string]struct{ Blobs, Bytes int64 }

func (c Collected) add(kind string, size int64) {
	e := c[kind]
	e.Blobs++
	e.Bytes += size
	c[kind] = e
}

// sweeper is a store that also removes uploads never confirmed (and, for
// OCI, the pre-authenticated requests that have expired).
type sweeper interface {
	Sweep(ctx context.Context) error
}

// cacheUses remembers when each cache was last restored, in this
// process: what "least recently used" goes by. A cache not restored since
// the coordinator started counts as used when it was saved.
type cacheUses struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (u *cacheUses) used(key string, at time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last == nil {
		u.last = map[string]time.Time{}
	}
	u.last[key] = at
}

func (u *cacheUses) lastUse(i blob.Info) time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, ok := u.last[i.Key]; ok && t.After(i.Modified) {
		return t
	}
	return i.Modified
}

func (u *cacheUses) forget(key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.last, key)
}

// collectEvery runs Collect every r.Every until ctx ends (the first at
// once), logging what it freed.
func (c *Coordinator) collectEvery(ctx context.Context) {
	every := cmp.Or(c.cfg.Retention.Every, time.Hour)
	for {
		got, err := c.Collect(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("collecting what is past its retention", "error", err)
		}
		for kind, n := range got {
			c.log.Info("removed what is past its retention", "kind", kind, "blobs", n.Blobs, "bytes", n.Bytes)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// Collect removes from the blob store the artifacts and logs past their
// retention, each repository's least recently used caches past its
// bound, and uploads never confirmed (the store's Sweep); it counts what
// it removed in /metrics.
func (c *Coordinator) Collect(ctx context.Context) (Collected, error) {
	got := Collected{}
	if c.cfg.Blobs == nil {
		return got, nil
	}
	r, now := c.cfg.Retention, c.cfg.Now()
	var errs []error
	for _, k := range []struct {
		kind, prefix string
		keep         time.Duration
	}{{KindArtifact, "artifacts/", r.Artifacts}, {"log", "logs/", r.Logs}} {
		if k.keep > 0 {
			errs = append(errs, c.removeOlder(ctx, k.kind, k.prefix, now.Add(-k.keep), got))
		}
	}
	if r.CacheMaxSize > 0 {
		errs = append(errs, c.trimCaches(ctx, r.CacheMaxSize, got))
	}
	if s, ok := c.cfg.Blobs.(sweeper); ok {
		errs = append(errs, s.Sweep(ctx))
	}
	for kind, n := range got {
		c.metrics.collected(kind, n.Blobs, n.Bytes)
	}
	return got, errors.Join(errs...)
}

// removeOlder removes the blobs under prefix saved before cutoff.
func (c *Coordinator) removeOlder(ctx context.Context, kind, prefix string, cutoff time.Time, got Collected) error {
	infos, err := c.cfg.Blobs.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("listing %s: %w", prefix, err)
	}
	for _, i := range infos {
		if !i.Modified.Before(cutoff) {
			continue
		}
		if err := c.cfg.Blobs.Delete(ctx, i.Key); err != nil {
			return err
		}
		got.add(kind, i.Size)
	}
	return nil
}

// trimCaches removes each repository's least recently used caches until
// its caches take at most max bytes.
func (c *Coordinator) trimCaches(ctx context.Context, max int64, got Collected) error {
	infos, err := c.cfg.Blobs.List(ctx, "caches/")
	if err != nil {
		return fmt.Errorf("listing caches: %w", err)
	}
	byRepo := map[string][]blob.Info{}
	for _, i := range infos {
		repo, _, _ := strings.Cut(strings.TrimPrefix(i.Key, "caches/"), "/")
		byRepo[repo] = append(byRepo[repo], i)
	}
	for _, caches := range byRepo {
		var total int64
		for _, i := range caches {
			total += i.Size
		}
		slices.SortFunc(caches, func(a, b blob.Info) int { return c.cacheUses.lastUse(a).Compare(c.cacheUses.lastUse(b)) })
		for _, i := range caches {
			if total <= max {
				break
			}
			if err := c.cfg.Blobs.Delete(ctx, i.Key); err != nil {
				return err
			}
			c.cacheUses.forget(i.Key)
			total -= i.Size
			got.add(KindCache, i.Size)
		}
	}
	return nil
}
