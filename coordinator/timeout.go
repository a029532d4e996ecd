package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// timeOut cancels the running attempts that have run longer than their
// build's timeout: the repository's, or the coordinator's. A canceled
// attempt's containers go as for any cancel, and its end says it timed
// out.
func (c *Coordinator) timeOut(ctx context.Context) {
	limit := func(repo string) time.Duration {
		if d := c.repos.timeout(repo); d > 0 {
			return d
		}
		return c.cfg.BuildTimeout
	}
	for _, o := range c.leases.overdue(c.cfg.Now(), limit) {
		why := fmt.Sprintf("timed out: it ran longer than its build timeout of %s (repos add --build-timeout, coordinator --build-timeout)", o.timeout)
		err := c.cancelBecause(ctx, o.build, why)
		switch {
		case err == nil:
			c.log.Warn("build timed out; canceling it", "build", o.build, "attempt", o.attempt, "timeout", o.timeout)
		case !errors.Is(err, ErrEnded):
			c.log.Error("could not cancel a build that timed out", "build", o.build, "error", err)
		}
	}
}
