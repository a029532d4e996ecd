package coordinator

import (
	"context"
	"errors"
	"fmt"
)

// timeOut, on each lease tick, cancels the running attempts that have run
// longer than their build's timeout: the repository's, else the
// coordinator's (none when that is negative). A canceled attempt's
// containers go as for any cancel, and its end says it timed out. The
// agents of attempts the coordinator canceled before are told again: the
// first word may have been lost with a stream that ended.
func (c *Coordinator) timeOut(ctx context.Context) {
	canceled, others := c.leases.runningSince()
	for _, a := range canceled {
		if conn := c.agents.connected(a.agent); conn != nil {
			conn.cancel(a.build, a.attempt)
		}
	}
	now := c.cfg.Now()
	for _, a := range others {
		limit := c.repos.timeout(a.repo)
		if limit <= 0 {
			limit = c.cfg.BuildTimeout
		}
		if limit <= 0 || a.started.IsZero() || now.Sub(a.started) <= limit {
			continue
		}
		why := fmt.Sprintf("timed out: it ran longer than its build timeout of %s (repos add --build-timeout, coordinator --build-timeout)", limit)
		err := c.cancelBecause(ctx, a.build, why)
		switch {
		case err == nil:
			c.log.Warn("build timed out; canceling it", "build", a.build, "attempt", a.attempt, "timeout", limit)
		case !errors.Is(err, ErrEnded):
			c.log.Error("could not cancel a build that timed out", "build", a.build, "error", err)
		}
	}
}
