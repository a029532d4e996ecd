package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"golang.org/x/sync/errgroup"

	"github.com/monkeyci/monkeyci/coordinator/server"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/forge"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/pgtest"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

const (
	webhookSenders = 200
	// webhookRate is the deliveries a second the senders offer together,
	// each at its own steady pace: a forge's deliveries arrive when pushes
	// happen, not as fast as the coordinator answers (with 200 senders
	// that each wait for their answer, the time to answer is 200 over the
	// rate served, whatever that rate).
	webhookRate       = 1000
	webhookDeliveries = 10000
	webhookMaxP99     = 5 * time.Millisecond
	// On a standby of coordinators sharing PostgreSQL (issue 18).
	webhookStandbyMaxP99 = 10 * time.Millisecond
	webhookRounds        = 5
	webhookMaxFirst      = time.Second
	hookSecret           = "bench-hook-secret"
)

// delivery is a signed GitHub push of commit to main of acme/app.
func delivery(url, commit, id string) *http.Request {
	body := []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git"},"sender":{"login":"bench"}}`, commit))
	req, _ := http.NewRequest(http.MethodPost, url+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", id)
	forge.Sign(forge.GitHub, req.Header, body, hookSecret)
	return req
}

// BenchmarkWebhookAnswer: 200 goroutines, together offering 1,000 a
// second, post 10,000 signed push deliveries, each its own, to a
// coordinator's HTTP port over loopback; measured is each POST's time to
// its 202 (the build stored, queued).
func BenchmarkWebhookAnswer(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := server.Start(ctx, server.Config{DataDir: b.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0"})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	if _, err := srv.Coordinator.AdminServer().AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "/srv/acme/app", WebhookSecret: hookSecret}); err != nil {
		b.Fatal(err)
	}
	webhookAnswers(b, "http://"+srv.HTTPAddr, webhookMaxP99, "")
}

// BenchmarkWebhookAnswerOnAStandby is BenchmarkWebhookAnswer posted to a
// coordinator that stands by, beside the leader, on one PostgreSQL (fsync
// on): each delivery's build is in the database when it is answered.
func BenchmarkWebhookAnswerOnAStandby(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pg := pgtest.StartWith(b, pgtest.Options{Durable: true})
	var srvs [2]*server.Server
	for i := range srvs {
		srv, err := server.Start(ctx, server.Config{DataDir: b.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
			Database: pg.DSN, TLS: false, JoinToken: "bench-join", AdminToken: "bench-admin",
			MasterKey: strings.Repeat("ab", 32)}) // shared, as docs/operations.md says
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Close()
		srvs[i] = srv
		if i == 0 {
			deadline := time.Now().Add(time.Minute)
			for !srv.Coordinator.Leading() {
				if time.Now().After(deadline) {
					b.Fatal("the first coordinator did not lead within a minute")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	if _, err := srvs[0].Coordinator.AdminServer().AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "/srv/acme/app", WebhookSecret: hookSecret}); err != nil {
		b.Fatal(err)
	}
	if srvs[1].Coordinator.Leading() {
		b.Fatal("the second coordinator leads")
	}
	webhookAnswers(b, "http://"+srvs[1].HTTPAddr, webhookStandbyMaxP99, " on a standby (PostgreSQL)")
}

// webhookAnswers posts the deliveries to url and reports the answers'
// times against maxP99.
func webhookAnswers(b *testing.B, url string, maxP99 time.Duration, where string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: webhookSenders}}
	// Warm the connections (the HTTP ones, and the store's, which a pool
	// opens as calls come at once) and the store's statements: from all
	// the senders together, as the measured deliveries come.
	var warm errgroup.Group
	for i := range webhookSenders {
		warm.Go(func() error {
			resp, err := client.Do(delivery(url, fmt.Sprintf("%040x", webhookDeliveries+i), fmt.Sprint("warm-", i)))
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			return resp.Body.Close()
		})
	}
	if err := warm.Wait(); err != nil {
		b.Fatal(err)
	}
	lat := make([][]time.Duration, webhookSenders)
	var wg sync.WaitGroup
	var failed sync.Once
	var failure error
	start := time.Now()
	for w := range webhookSenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			every := time.Second * webhookSenders / webhookRate
			next := start.Add(every * time.Duration(w) / webhookSenders) // spread the senders' phases
			for i := w; i < webhookDeliveries; i += webhookSenders {
				time.Sleep(time.Until(next))
				next = next.Add(every)
				// Each its own commit: the same push again builds nothing.
				req := delivery(url, fmt.Sprintf("%040x", i), fmt.Sprint("d-", i))
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						err = fmt.Errorf("answered %d", resp.StatusCode)
					}
				}
				if err != nil {
					failed.Do(func() { failure = err })
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if failure != nil {
		b.Fatal(failure)
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	all = sorted(all)
	p50, p99 := all[len(all)/2], all[len(all)*99/100]
	verdict := verdictAtMost(p99, maxP99)
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(p50), "p50-ms")
	b.Logf("webhook%s: POST -> 202 p99 %.2f ms (at most %.0f ms) %s; p50 %.2f ms; %d deliveries from %d concurrent senders at %.0f/s",
		where, ms(p99), ms(maxP99), verdict, ms(p50), len(all), webhookSenders, float64(len(all))/elapsed.Seconds())
}

// BenchmarkWebhookToFirstCommand: an idle agent, a registered local
// repository and its image present; measured is the time from posting a
// push delivery to its job's first command starting (the command/start
// event's own time, written in the job's container), median of rounds.
func BenchmarkWebhookToFirstCommand(b *testing.B) {
	dockertest.Engine(b)
	dockertest.RequireImage(b, busybox)
	repo, commit := gittest.Repo(b, map[string]string{".monkeyci/build.yaml": fmt.Sprintf("- {id: first, image: %s, script: ['echo go']}\n", busybox)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, _ := startFleet(ctx, b, true)
	api := srv.Coordinator.AdminServer()
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: repo, WebhookSecret: hookSecret}); err != nil {
		b.Fatal(err)
	}
	url := "http://" + srv.HTTPAddr
	var took []time.Duration
	git, err := gogit.PlainOpen(repo)
	if err != nil {
		b.Fatal(err)
	}
	for round := range webhookRounds + 1 { // the first warms the agent up
		if round > 0 { // each round a new push: the same one again builds nothing
			commit = gittest.Commit(b, git, repo, map[string]string{"round": fmt.Sprint(round)})
		}
		sent := time.Now()
		resp, err := http.DefaultClient.Do(delivery(url, commit, fmt.Sprint("first-", round)))
		if err != nil {
			b.Fatal(err)
		}
		var answer struct{ Build string }
		_ = json.NewDecoder(resp.Body).Decode(&answer)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("answered %d", resp.StatusCode)
		}
		started := firstCommand(ctx, b, api, answer.Build)
		if os.Getenv("MONKEYCI_BENCH_DEBUG") != "" {
			timeline(ctx, api, answer.Build, sent)
		}
		if round > 0 {
			took = append(took, started.Sub(sent))
		}
	}
	took = sorted(took)
	median := took[len(took)/2]
	verdict := verdictAtMost(median, webhookMaxFirst)
	b.ReportMetric(ms(median), "median-ms")
	b.Logf("webhook -> first command running: median %.0f ms (at most %.0f ms) %s; fastest %.0f, slowest %.0f (%d rounds)",
		ms(median), ms(webhookMaxFirst), verdict, ms(took[0]), ms(took[len(took)-1]), len(took))
}

// firstCommand waits for a build's first command/start event and returns
// its time, then waits for the build to end in success.
func firstCommand(ctx context.Context, b *testing.B, api fleet.AdminServer, id string) time.Time {
	b.Helper()
	var started time.Time
	for {
		if ctx.Err() != nil {
			b.Fatal("the build did not end")
		}
		d, err := api.GetBuild(ctx, &fleet.GetBuildRequest{Id: id})
		if err != nil {
			b.Fatal(err)
		}
		for _, se := range d.GetEvents() {
			var e events.Event
			if started.IsZero() && json.Unmarshal(se.GetEvent(), &e) == nil && e.Type == events.CommandStart {
				started = e.Time
			}
		}
		if d.GetBuild().GetState() == "ended" {
			if d.GetBuild().GetResult() != "success" || started.IsZero() {
				b.Fatalf("the build ended %s: %s", d.GetBuild().GetResult(), d.GetBuild().GetMessage())
			}
			return started
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// timeline prints a build's events as offsets from t0 (MONKEYCI_BENCH_DEBUG).
func timeline(ctx context.Context, api fleet.AdminServer, id string, t0 time.Time) {
	d, err := api.GetBuild(ctx, &fleet.GetBuildRequest{Id: id})
	if err != nil {
		return
	}
	fmt.Fprintf(os.Stderr, "build %s: started at +%d ms\n", id, d.GetBuild().GetStarted().AsTime().Sub(t0).Milliseconds())
	for _, se := range d.GetEvents() {
		var e events.Event
		if json.Unmarshal(se.GetEvent(), &e) == nil {
			fmt.Fprintf(os.Stderr, "  +%5d ms %s %s\n", e.Time.Sub(t0).Milliseconds(), e.Type, e.Job)
		}
	}
}
