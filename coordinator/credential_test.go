package coordinator_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/internal/fleettest"
	"github.com/monkeyci/monkeyci/proto/fleet"
	"github.com/monkeyci/monkeyci/secret"
)

// A credential in a repository's URL is sealed apart from the URL: shown
// as ***, never stored in clear, given only in the assignment an agent
// fetches from, and never to another URL registered later.
func TestAURLCredentialIsSealedAndGivenOnlyToTheFetch(t *testing.T) {
	const token = "TOKEN-5f1d9a0c7e"
	f := newFleet(t, time.Minute)
	api := adminAPI(t, f)
	admin := as("admin-secret")
	ctx := context.Background()
	withToken := "https://deploy:" + token + "@git.example/acme/app.git"
	bare := "https://git.example/acme/app.git"

	added, err := api.AddRepo(admin, &fleet.Repo{Name: "acme/app", Url: withToken})
	if err != nil {
		t.Fatal(err)
	}
	listed, err := api.ListRepos(admin, &fleet.ListReposRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range append(listed.GetRepos(), added) {
		if r.GetUrl() != "https://***@git.example/acme/app.git" {
			t.Errorf("repository shown with URL %q, want its credential as ***", r.GetUrl())
		}
	}
	stored, err := f.store.GetRepo(ctx, "acme/app")
	if err != nil {
		t.Fatal(err)
	}
	if stored.URL != bare || len(stored.URLCredential) == 0 || bytes.Contains(stored.URLCredential, []byte(token)) {
		t.Errorf("stored %q with credential %q, want %s and the credential sealed", stored.URL, stored.URLCredential, bare)
	}

	raw := fleettest.Dial(t, f.addr)
	raw.Join(t, fleettest.Hello("raw", "join-secret", &fleet.Capacity{MilliCpus: 64000, Memory: 64 << 30}))
	assigned := func() string {
		m, err := raw.RecvUntil(t, func(m *fleet.CoordinatorMessage) bool { return m.GetAssign() != nil })
		if err != nil {
			t.Fatal(err)
		}
		return m.GetAssign().GetSource().GetUrl()
	}
	b, err := api.Trigger(admin, &fleet.TriggerRequest{Repo: "acme/app"})
	if err != nil {
		t.Fatal(err)
	}
	if got := assigned(); got != withToken {
		t.Errorf("the agent was sent %q, want the URL with its credential", got)
	}
	shown, err := api.GetBuild(admin, &fleet.GetBuildRequest{Id: b.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetUrl() != bare || shown.GetBuild().GetUrl() != bare {
		t.Errorf("the build shows %q and %q, want %s", b.GetUrl(), shown.GetBuild().GetUrl(), bare)
	}

	// A build of a URL with a credential, not registered, is refused
	// without repeating the credential.
	_, err = api.Trigger(admin, &fleet.TriggerRequest{Url: "https://" + token + "@git.example/other.git"})
	if status.Code(err) != codes.InvalidArgument || strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), "repos add") {
		t.Errorf("a trigger of a URL with a credential: %v, want it refused, saying to register it", err)
	}

	// Registered again at another host, without one: the old credential
	// goes to no one.
	if _, err := api.AddRepo(admin, &fleet.Repo{Name: "acme/app", Url: "https://elsewhere.example/acme/app.git"}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Trigger(admin, &fleet.TriggerRequest{Repo: "acme/app"}); err != nil {
		t.Fatal(err)
	}
	if got := assigned(); got != "https://elsewhere.example/acme/app.git" {
		t.Errorf("after the URL changed the agent was sent %q", got)
	}

	// Nothing on disk holds it in clear: the database, its journal, the logs.
	for _, file := range filesUnder(t, f.dir) {
		if data, _ := os.ReadFile(file); bytes.Contains(data, []byte(token)) {
			t.Errorf("%s holds the credential in clear", file)
		}
	}
}

// A repository registered with a credential in its URL before they were
// kept apart has it sealed when the coordinator starts.
func TestACredentialStoredInClearIsSealedAtStart(t *testing.T) {
	const token = "TOKEN-0be1c2d3e4"
	f := newFleet(t, time.Minute)
	ctx := context.Background()
	if err := f.store.SaveRepo(ctx, coordinator.Repo{Name: "old/app", URL: "https://" + token + "@git.example/old/app.git"}); err != nil {
		t.Fatal(err)
	}
	keys, err := secret.LoadKeyring(f.dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := coordinator.New(ctx, coordinator.Config{Store: f.store, Logs: f.disk, Keys: keys, Logger: hclog.NewNullLogger()}); err != nil {
		t.Fatal(err)
	}
	r, err := f.store.GetRepo(ctx, "old/app")
	if err != nil {
		t.Fatal(err)
	}
	if r.URL != "https://git.example/old/app.git" || len(r.URLCredential) == 0 {
		t.Fatalf("after a start: %q, credential %q", r.URL, r.URLCredential)
	}
	if plain, err := keys.Open(r.URLCredential, "repo/old/app/url-credential"); err != nil || string(plain) != token {
		t.Errorf("the sealed credential opens to %q, %v", plain, err)
	}
}

// filesUnder lists the regular files under dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
