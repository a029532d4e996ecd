package coordinator

import (
	"context"
	"time"
)

// revocationLooks is how often a coordinator sharing its store looks for
// tokens another one revoked: a session open here on a revoked token ends
// within it.
const revocationLooks = time.Second

// tokenHashes are the tokens the store holds now (nil when it cannot say).
func (c *Coordinator) tokenHashes(ctx context.Context) map[string]bool {
	ts, err := c.cfg.Store.ListTokens(ctx)
	if err != nil {
		return nil
	}
	hashes := make(map[string]bool, len(ts))
	for _, t := range ts {
		hashes[t.Hash] = true
	}
	return hashes
}

// watchRevocations tells this coordinator's open sessions (Revocations)
// of a token gone from the store since known, revoked through another
// coordinator, which tells only its own. It runs until ctx ends.
func (c *Coordinator) watchRevocations(ctx context.Context, known map[string]bool) {
	every(ctx, revocationLooks, func() bool {
		now := c.tokenHashes(ctx)
		if now == nil {
			return true // looked at again next time
		}
		revoked := false
		for hash := range known {
			if !now[hash] {
				c.uses.forget(hash)
				revoked = true
			}
		}
		if revoked {
			c.revocations.notify()
		}
		known = now
		return true
	})
}
