package coordinator

import (
	"context"
	"sync"
)

// revoker is a store whose URLs can be withdrawn before their time is over
// (OCI's pre-authenticated requests; S3's presigned URLs cannot be).
type revoker interface {
	RevokeURL(ctx context.Context, url string) error
}

// handedURLs remembers, per build, the URLs its attempts were handed, so
// that they are withdrawn when an attempt ends.
type handedURLs struct {
	mu      sync.Mutex
	byBuild map[string][]string
}

func (h *handedURLs) add(build, url string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byBuild == nil {
		h.byBuild = map[string][]string{}
	}
	h.byBuild[build] = append(h.byBuild[build], url)
}

func (h *handedURLs) take(build string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	keys := h.byBuild[build]
	delete(h.byBuild, build)
	return keys
}

// handedURL notes a URL handed to an attempt of build, for a store that
// can withdraw it.
func (c *Coordinator) handedURL(build, url string) {
	if _, ok := c.cfg.Blobs.(revoker); ok {
		c.handed.add(build, url)
	}
}

// revokeURLs withdraws the URLs handed to the build's attempts: an
// attempt that ended reaches nothing more through them. A later attempt
// asks for its own.
func (c *Coordinator) revokeURLs(build string) {
	r, ok := c.cfg.Blobs.(revoker)
	if !ok {
		return
	}
	urls := c.handed.take(build)
	if len(urls) == 0 {
		return
	}
	go func() {
		for _, url := range urls {
			if err := r.RevokeURL(context.Background(), url); err != nil {
				c.log.Warn("could not withdraw an ended attempt's URL; it works until its time is over", "build", build, "error", err)
			}
		}
	}()
}
