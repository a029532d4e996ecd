package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
)

const (
	cancelRounds = 3
	cancelLimit  = 2 * time.Second
)

// BenchmarkCancel: a build whose job sleeps is canceled through the
// coordinator once the job is running; measured is the time from the
// cancel to the last of the build's containers gone from the engine, and
// to the build stored as ended, canceled (the worst of a few rounds).
func BenchmarkCancel(b *testing.B) {
	engine := dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	repo, commit := gittest.Repo(b, map[string]string{".monkeyci/build.yaml": fmt.Sprintf(
		"- {id: sleeper, image: %s, script: ['echo sleeping', 'sleep 600']}\n", busybox)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, dataDir := startFleet(ctx, b, true)
	c := srv.Coordinator
	var worstGone, worstEnded time.Duration
	for range cancelRounds {
		bld, err := c.Trigger(ctx, coordinator.Build{Source: coordinator.Source{URL: repo, Commit: commit}})
		if err != nil {
			b.Fatal(err)
		}
		// Running: its first line is stored (the logstore's layout).
		logFile := filepath.Join(dataDir, "logs", "builds", bld.ID, "1", "out-sleeper.log")
		for {
			if st, err := os.Stat(logFile); err == nil && st.Size() > 0 {
				break
			}
			if ctx.Err() != nil {
				b.Fatal("the job did not start")
			}
			time.Sleep(5 * time.Millisecond)
		}
		labels := map[string]string{agent.LabelBuild: bld.ID + "-1"}
		if ids, err := engine.ListContainers(ctx, labels); err != nil || len(ids) == 0 {
			b.Fatalf("no container of the running build: %v %v", ids, err)
		}
		start := time.Now()
		if err := c.Cancel(ctx, bld.ID); err != nil {
			b.Fatal(err)
		}
		var gone, ended time.Duration
		for gone == 0 || ended == 0 {
			if ctx.Err() != nil {
				b.Fatal("the canceled build did not end")
			}
			if ids, err := engine.ListContainers(ctx, labels); err == nil && len(ids) == 0 && gone == 0 {
				gone = time.Since(start)
			}
			if now, err := c.Build(ctx, bld.ID); err == nil && now.State == coordinator.Ended && ended == 0 {
				ended = time.Since(start)
				if now.Result != events.Canceled {
					b.Fatalf("the build ended %s, want canceled", now.Result)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		worstGone, worstEnded = max(worstGone, gone), max(worstEnded, ended)
	}
	verdict := verdictAtMost(worstGone, cancelLimit)
	b.ReportMetric(ms(worstGone), "containers-gone-ms")
	b.ReportMetric(ms(worstEnded), "ended-ms")
	b.Logf("cancel: the build's containers gone %.0f ms after the cancel (at most %.0f ms) %s; the build stored canceled after %.0f ms (worst of %d)",
		ms(worstGone), ms(cancelLimit), verdict, ms(worstEnded), cancelRounds)
}
