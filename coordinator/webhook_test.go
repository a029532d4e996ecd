package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
	"github.com/monkeyci/monkeyci/forge"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/proto/fleet"
	"github.com/monkeyci/monkeyci/secret"
)

// fakeGitHub records commit statuses as GitHub's API takes them.
type fakeGitHub struct {
	mu       sync.Mutex
	statuses []map[string]string
	changed  chan struct{}
}

func (g *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/repos/acme/app/statuses/") || r.Header.Get("Authorization") != "Bearer gh-token" {
		http.Error(w, "not what GitHub's API takes: "+r.Method+" "+r.URL.Path, http.StatusNotFound)
		return
	}
	var body map[string]string
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body["sha"] = strings.TrimPrefix(r.URL.Path, "/repos/acme/app/statuses/")
	g.mu.Lock()
	g.statuses = append(g.statuses, body)
	g.mu.Unlock()
	select {
	case g.changed <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusCreated)
}

func (g *fakeGitHub) waitFor(t *testing.T, state string) []map[string]string {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		g.mu.Lock()
		got := append([]map[string]string(nil), g.statuses...)
		g.mu.Unlock()
		if len(got) > 0 && got[len(got)-1]["state"] == state {
			return got
		}
		select {
		case <-g.changed:
		case <-deadline:
			t.Fatalf("no %s status within a minute; got %v", state, got)
		}
	}
}

// push is a GitHub push delivery of commit to main of acme/app.
func push(t *testing.T, url, commit, delivery, secret string) *http.Response {
	t.Helper()
	body := fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"deleted":false,
		"repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git"},"sender":{"login":"alice"}}`, commit)
	return postDelivery(t, url, "push", delivery, []byte(body), secret)
}

func postDelivery(t *testing.T, url, event, delivery string, body []byte, secret string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/webhooks/github", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", delivery)
	forge.Sign(forge.GitHub, req.Header, body, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func answerOf(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var a map[string]any
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &a); err != nil {
		t.Fatalf("answer %q: %v", data, err)
	}
	return a
}

// A signed push from GitHub builds the registered repository's commit once,
// with its secret in the job's environment and masked in the stored log,
// and GitHub hears the build's state.
func TestAGitHubPushBuildsOnceWithItsSecretMaskedAndReportsItsStatus(t *testing.T) {
	dockertest.RequireImage(t, dockertest.Busybox)
	f := newFleet(t, 10*time.Second)
	github := &fakeGitHub{changed: make(chan struct{}, 1)}
	gh := httptest.NewServer(github)
	defer gh.Close()
	hooks := f.webhooks(t)

	const token = "s3cr3t-token-value"
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": "- {id: deploy, image: monkeyci/busybox:latest, script: ['echo token is $API_TOKEN', 'echo done']}\n"})
	ctx := context.Background()
	api := f.c.AdminServer()
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: repo, WebhookSecret: "hook-secret", Forge: "github",
		ApiUrl: gh.URL, ForgeToken: "gh-token"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.SetSecret(ctx, &fleet.SetSecretRequest{Repo: "acme/app", Key: "API_TOKEN", Value: []byte(token)}); err != nil {
		t.Fatal(err)
	}
	f.startAgent(t, "a1", agent.Resources{MilliCPUs: 2000, Memory: 8 << 30})

	resp := push(t, hooks.URL, commit, "delivery-1", "hook-secret")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("push answered %d: %v", resp.StatusCode, answerOf(t, resp))
	}
	id, _ := answerOf(t, resp)["build"].(string)
	again := push(t, hooks.URL, commit, "delivery-1", "hook-secret")
	if a := answerOf(t, again); again.StatusCode != http.StatusOK || a["build"] != id || a["duplicate"] != true {
		t.Errorf("the same delivery again: %d %v, want 200 naming build %s", again.StatusCode, a, id)
	}
	// GitHub's "redeliver" sends the same event under a new delivery id.
	redelivered := push(t, hooks.URL, commit, "delivery-2", "hook-secret")
	if a := answerOf(t, redelivered); redelivered.StatusCode != http.StatusOK || a["build"] != id || a["duplicate"] != true {
		t.Errorf("the same push under a new delivery id: %d %v, want 200 naming build %s", redelivered.StatusCode, a, id)
	}

	b := f.waitEnded(t, id)
	if b.Result != events.Success || b.Source.Commit != commit || b.Repo != "acme/app" || !strings.Contains(b.Trigger, "push to main by alice") {
		t.Fatalf("build %+v", b)
	}
	if log := f.readLog(t, coordinator.LogKey{Build: id, Attempt: 1, Job: "deploy", Stream: "out"}); log != "token is ***\ndone\n" {
		t.Errorf("stored log %q, want the secret masked", log)
	}
	builds, _ := f.store.ListBuilds(ctx, coordinator.BuildFilter{})
	if len(builds) != 1 {
		t.Errorf("%d builds stored, want 1 (one delivery)", len(builds))
	}

	got := github.waitFor(t, "success")
	states := []string{}
	for _, s := range got {
		states = append(states, s["state"])
		if s["sha"] != commit || s["context"] != "monkeyci" || s["target_url"] != "http://ci.example/builds/"+id {
			t.Errorf("status %v", s)
		}
	}
	if strings.Join(states, ",") != "pending,pending,success" {
		t.Errorf("statuses %v, want queued (pending), running (pending), success", states)
	}
}

// Nothing a forge sends that fails a check creates a build.
func TestBadDeliveriesAreRefusedAndCreateNoBuild(t *testing.T) {
	f := newFleet(t, 10*time.Second)
	hooks := f.webhooks(t)
	ctx := context.Background()
	if _, err := f.c.AdminServer().AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "/srv/app", WebhookSecret: "hook-secret", Branches: []string{"main"}}); err != nil {
		t.Fatal(err)
	}
	const commit = "0123456789abcdef0123456789abcdef01234567"
	good := func(ref string) []byte {
		return []byte(fmt.Sprintf(`{"ref":%q,"after":%q,"repository":{"full_name":"acme/app","clone_url":"https://x/acme/app.git"}}`, ref, commit))
	}
	tests := []struct {
		name         string
		forgePath    string
		event        string
		body         []byte
		secret       string
		unsigned     bool
		code         int
		answerHolds  string
		createsBuild bool
	}{
		{"wrong signature", "github", "push", good("refs/heads/main"), "not-the-secret", false, 401, "not signed", false},
		{"no signature", "github", "push", good("refs/heads/main"), "", true, 401, "", false},
		{"unknown repository", "github", "push", []byte(`{"ref":"refs/heads/main","after":"` + commit + `","repository":{"full_name":"other/app","clone_url":"https://x/other.git"}}`), "hook-secret", false, 401, "not signed", false},
		{"malformed body", "github", "push", []byte(`{"repository":`), "hook-secret", false, 400, "", false},
		{"too large", "github", "push", append(good("refs/heads/main"), bytes.Repeat([]byte(" "), forge.MaxBody)...), "hook-secret", false, 413, "", false},
		{"unknown forge", "sourcehut", "push", good("refs/heads/main"), "hook-secret", false, 404, "unknown forge", false},
		{"an event that builds nothing", "github", "issues", good("refs/heads/main"), "hook-secret", false, 202, "issues", false},
		{"a branch not built", "github", "push", good("refs/heads/feature"), "hook-secret", false, 202, "feature", false},
		{"a good one, last", "github", "push", good("refs/heads/main"), "hook-secret", false, 202, "", true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, hooks.URL+"/webhooks/"+tc.forgePath, bytes.NewReader(tc.body))
			req.Header.Set("X-GitHub-Event", tc.event)
			req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("d-%d", i))
			if !tc.unsigned {
				forge.Sign(forge.GitHub, req.Header, tc.body, tc.secret)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			a := answerOf(t, resp)
			if resp.StatusCode != tc.code || !strings.Contains(fmt.Sprint(a), tc.answerHolds) {
				t.Errorf("answered %d %v, want %d saying %q", resp.StatusCode, a, tc.code, tc.answerHolds)
			}
			builds, _ := f.store.ListBuilds(ctx, coordinator.BuildFilter{})
			if created := len(builds) > 0; created != tc.createsBuild {
				t.Errorf("%d builds stored after it", len(builds))
			}
		})
	}
}

// `monkeyci trigger --repo NAME` builds a registered repository from its
// registered URL.
func TestTriggerByARegisteredName(t *testing.T) {
	f := newFleet(t, 10*time.Second)
	ctx := context.Background()
	if _, err := f.c.AdminServer().AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "/srv/git/app"}); err != nil {
		t.Fatal(err)
	}
	info, err := f.c.AdminServer().Trigger(ctx, &fleet.TriggerRequest{Repo: "acme/app", Url: "/home/me/acme/app"})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetRepo() != "acme/app" || info.GetUrl() != "/srv/git/app" {
		t.Errorf("triggered %s from %s, want acme/app from its registered URL", info.GetRepo(), info.GetUrl())
	}
	info, err = f.c.AdminServer().Trigger(ctx, &fleet.TriggerRequest{Repo: "not/registered", Url: "/home/me/not/registered"})
	if err != nil || info.GetUrl() != "/home/me/not/registered" {
		t.Errorf("an unregistered name builds its path: %v %v", info, err)
	}
}

// Each forge's push, signed as that forge signs it, queues one build of the
// registered repository's commit, said in words.
func TestEveryForgesPushQueuesABuild(t *testing.T) {
	const commit = "89abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		forge   forge.Kind
		headers map[string]string
		body    string
	}{
		{forge.GitHub, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "gh-1"},
			`{"ref":"refs/heads/main","after":"` + commit + `","repository":{"full_name":"acme/app","clone_url":"https://github.com/acme/app.git"},"sender":{"login":"alice"}}`},
		{forge.GitLab, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "gl-1"},
			`{"object_kind":"push","ref":"refs/heads/main","checkout_sha":"` + commit + `","after":"` + commit + `","user_username":"alice",
			"project":{"path_with_namespace":"acme/app","git_http_url":"https://gitlab.com/acme/app.git","git_ssh_url":"git@gitlab.com:acme/app.git"}}`},
		{forge.Gitea, map[string]string{"X-Gitea-Event": "push", "X-Gitea-Delivery": "gt-1"},
			`{"ref":"refs/heads/main","after":"` + commit + `","repository":{"full_name":"acme/app","clone_url":"https://git.example/acme/app.git"},"sender":{"login":"alice"}}`},
		{forge.Bitbucket, map[string]string{"X-Event-Key": "repo:push", "X-Request-UUID": "bb-1"},
			`{"push":{"changes":[{"new":{"type":"branch","name":"main","target":{"hash":"` + commit + `"}}}]},
			"repository":{"full_name":"acme/app","links":{"html":{"href":"https://bitbucket.org/acme/app"}}},"actor":{"username":"alice"}}`},
	}
	for _, tc := range tests {
		t.Run(string(tc.forge), func(t *testing.T) {
			f := newFleet(t, 10*time.Second)
			hooks := f.webhooks(t)
			ctx := context.Background()
			if _, err := f.c.AdminServer().AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "/srv/git/app", WebhookSecret: "hook-secret"}); err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodPost, hooks.URL+"/webhooks/"+string(tc.forge), strings.NewReader(tc.body))
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			forge.Sign(tc.forge, req.Header, []byte(tc.body), "hook-secret")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			a := answerOf(t, resp)
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("answered %d %v", resp.StatusCode, a)
			}
			b, err := f.store.GetBuild(ctx, a["build"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if b.Repo != "acme/app" || b.Source.URL != "/srv/git/app" || b.Source.Commit != commit || b.Source.Branch != "main" ||
				b.Trigger != "push to main by alice on "+string(tc.forge) || b.Forge != string(tc.forge)+":acme/app" {
				t.Errorf("queued %+v", b)
			}
		})
	}
}

// An unknown repository gets the very answer a wrong, a missing or an
// unverifiable signature gets, so that names cannot be probed.
func TestAnUnknownRepositoryAnswersAsABadSignature(t *testing.T) {
	f := newFleet(t, 10*time.Second)
	hooks := f.webhooks(t)
	ctx := context.Background()
	api := f.c.AdminServer()
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "/srv/app", WebhookSecret: "hook-secret"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.AddRepo(ctx, &fleet.Repo{Name: "acme/nosecret", Url: "/srv/nosecret"}); err != nil {
		t.Fatal(err)
	}
	const commit = "0123456789abcdef0123456789abcdef01234567"
	body := func(name string) []byte {
		return []byte(fmt.Sprintf(`{"ref":"refs/heads/main","after":%q,"repository":{"full_name":%q,"clone_url":"https://x/%s.git"}}`, commit, name, name))
	}
	answer := func(name, secret string, signed bool) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, hooks.URL+"/webhooks/github", bytes.NewReader(body(name)))
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-GitHub-Delivery", "d-"+name+secret)
		if signed {
			forge.Sign(forge.GitHub, req.Header, body(name), secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	unknownCode, unknownBody := answer("acme/secret-project", "hook-secret", true)
	if unknownCode != http.StatusUnauthorized || strings.Contains(unknownBody, "secret-project") {
		t.Errorf("unknown repository: %d %q, want 401 not naming it", unknownCode, unknownBody)
	}
	for _, tc := range []struct {
		name, repo, secret string
		signed             bool
	}{
		{"a wrong signature", "acme/app", "guessed", true},
		{"no signature", "acme/app", "", false},
		{"a repository without a secret", "acme/nosecret", "guessed", true},
		{"an unknown repository, unsigned", "acme/secret-project", "", false},
	} {
		if code, got := answer(tc.repo, tc.secret, tc.signed); code != unknownCode || got != unknownBody {
			t.Errorf("%s: %d %q; an unknown repository: %d %q; want the same", tc.name, code, got, unknownCode, unknownBody)
		}
	}
	if builds, _ := f.store.ListBuilds(ctx, coordinator.BuildFilter{}); len(builds) != 0 {
		t.Errorf("%d builds made", len(builds))
	}
}

// A forge's redelivery of a push under a new delivery id, after the
// coordinator restarted, builds nothing: the store remembers.
func TestARedeliveryAfterARestartBuildsNothing(t *testing.T) {
	f := newFleet(t, 10*time.Second)
	ctx := context.Background()
	if _, err := f.c.AdminServer().AddRepo(ctx, &fleet.Repo{Name: "acme/app", Url: "/srv/app", WebhookSecret: "hook-secret"}); err != nil {
		t.Fatal(err)
	}
	const commit = "0123456789abcdef0123456789abcdef01234567"
	serve := func(c *coordinator.Coordinator, delivery string) map[string]any {
		mux := http.NewServeMux()
		mux.Handle("POST /webhooks/{forge}", c.WebhookHandler())
		srv := httptest.NewServer(mux)
		defer srv.Close()
		resp := push(t, srv.URL, commit, delivery, "hook-secret")
		a := answerOf(t, resp)
		a["status"] = float64(resp.StatusCode)
		return a
	}
	first := serve(f.c, "before-restart")
	if first["status"] != float64(http.StatusAccepted) {
		t.Fatalf("the first delivery: %v", first)
	}
	keys, err := secret.LoadKeyring(f.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	restarted, err := coordinator.New(ctx, coordinator.Config{Store: f.store, Logs: f.disk, Keys: keys, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	again := serve(restarted, "after-restart")
	if again["status"] != float64(http.StatusOK) || again["build"] != first["build"] || again["duplicate"] != true {
		t.Errorf("the same push after a restart: %v, want 200 naming build %v", again, first["build"])
	}
	if builds, _ := f.store.ListBuilds(ctx, coordinator.BuildFilter{}); len(builds) != 1 {
		t.Errorf("%d builds stored, want 1", len(builds))
	}
}
