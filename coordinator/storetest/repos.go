package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
)

func reposAndTheirSecrets(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	r := coordinator.Repo{Name: "acme/app", URL: "https://example.com/acme/app.git", Branches: []string{"main", "release/*"},
		Forge: "github", WebhookSecret: []byte("sealed-hook"), ForgeToken: []byte("sealed-token"), DefaultBranch: "trunk"}
	must(t, s.SaveRepo(ctx, r))
	got, err := s.GetRepo(ctx, "acme/app")
	must(t, err)
	if got.URL != r.URL || len(got.Branches) != 2 || string(got.WebhookSecret) != "sealed-hook" || got.Created.IsZero() || got.DefaultBranch != "trunk" {
		t.Errorf("got %+v", got)
	}
	if got.Depth != nil {
		t.Errorf("a repository saved without a depth has %d", *got.Depth)
	}
	// A depth of 0 (the whole history) is kept apart from none.
	for _, d := range []int{0, 50} {
		r.Depth = &d
		must(t, s.SaveRepo(ctx, r))
		if got, _ := s.GetRepo(ctx, "acme/app"); got.Depth == nil || *got.Depth != d {
			t.Errorf("depth %d saved, %v read", d, got.Depth)
		}
	}
	r.Depth = nil
	if got, _ := s.GetRepo(ctx, "acme/app"); got.KeepSuperseded {
		t.Errorf("a repository saved without keeping superseded builds keeps them")
	}
	r.KeepSuperseded, r.MaxRunning, r.BuildTimeout, r.Priority = true, 3, 90*time.Minute, coordinator.PriorityLow
	must(t, s.SaveRepo(ctx, r))
	if got, _ := s.GetRepo(ctx, "acme/app"); !got.KeepSuperseded || got.MaxRunning != 3 || got.BuildTimeout != 90*time.Minute || got.Priority != coordinator.PriorityLow {
		t.Errorf("KeepSuperseded, MaxRunning 3, BuildTimeout 1h30m and priority low saved, read %v, %d, %s and %s",
			got.KeepSuperseded, got.MaxRunning, got.BuildTimeout, got.Priority)
	}
	// Saved again without secrets: the old ones stay.
	r.WebhookSecret, r.ForgeToken, r.Branches = nil, nil, nil
	must(t, s.SaveRepo(ctx, r))
	if got, _ := s.GetRepo(ctx, "acme/app"); string(got.ForgeToken) != "sealed-token" || got.Branches != nil {
		t.Errorf("after saving again: %+v", got)
	}
	for _, tc := range []struct {
		names, urls []string
		found       bool
	}{
		{[]string{"acme/app"}, nil, true},
		{[]string{"nope"}, []string{"git@example.com:acme/app.git", r.URL}, true},
		{[]string{"nope"}, []string{"https://example.com/other.git"}, false},
	} {
		got, err := s.FindRepo(ctx, tc.names, tc.urls)
		if tc.found && (err != nil || got.Name != "acme/app") || !tc.found && !errors.Is(err, coordinator.ErrNotFound) {
			t.Errorf("FindRepo(%v, %v) = %+v, %v", tc.names, tc.urls, got, err)
		}
	}

	must(t, s.SetSecret(ctx, "acme/app", "TOKEN", []byte("v1")))
	must(t, s.SetSecret(ctx, "acme/app", "TOKEN", []byte("v2")))
	must(t, s.SetSecret(ctx, "acme/app", "OTHER", []byte("v3")))
	if err := s.SetSecret(ctx, "nope", "K", []byte("v")); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("a secret of an unknown repository: %v", err)
	}
	secrets, err := s.Secrets(ctx, "acme/app")
	must(t, err)
	if string(secrets["TOKEN"]) != "v2" || len(secrets) != 2 {
		t.Errorf("secrets %q", secrets)
	}
	infos, err := s.ListSecrets(ctx, "acme/app")
	must(t, err)
	if len(infos) != 2 || infos[0].Key != "OTHER" || infos[1].Key != "TOKEN" {
		t.Errorf("listed %+v", infos)
	}
	must(t, s.RemoveSecret(ctx, "acme/app", "OTHER"))
	if err := s.RemoveSecret(ctx, "acme/app", "OTHER"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("removing it twice: %v", err)
	}
	must(t, s.RemoveRepo(ctx, "acme/app"))
	if secrets, _ := s.Secrets(ctx, "acme/app"); len(secrets) != 0 {
		t.Errorf("secrets outlive their repository: %q", secrets)
	}
	if _, err := s.GetRepo(ctx, "acme/app"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("removed repository: %v", err)
	}
}

// A URL credential not given again stays with its URL, and goes when the
// URL changes.
func aURLCredentialStaysOnlyWithItsURL(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	r := coordinator.Repo{Name: "acme/app", URL: "https://a.example/app.git", URLCredential: []byte("sealed-1")}
	must(t, s.SaveRepo(ctx, r))
	for _, tc := range []struct {
		url, credential, want string
	}{
		{"https://a.example/app.git", "", "sealed-1"},         // other settings saved again
		{"https://a.example/app.git", "sealed-2", "sealed-2"}, // a new one
		{"https://b.example/app.git", "", ""},                 // another host: gone
		{"https://a.example/app.git", "", ""},                 // and not back
	} {
		r.URL, r.URLCredential = tc.url, []byte(tc.credential)
		must(t, s.SaveRepo(ctx, r))
		got, err := s.GetRepo(ctx, "acme/app")
		must(t, err)
		if string(got.URLCredential) != tc.want {
			t.Errorf("saved with %s and %q: credential %q, want %q", tc.url, tc.credential, got.URLCredential, tc.want)
		}
	}
}

func aDeliveryMakesOneBuild(t *testing.T, open Opener) {
	s := open(t, nil)
	ctx := context.Background()
	b := coordinator.Build{ID: "b1", Repo: "acme/app", Source: coordinator.Source{URL: "u"}, Trigger: "push to main by alice", Forge: "github"}
	id, err := s.CreateDeliveredBuild(ctx, b, coordinator.Delivery{Forge: "github", ID: "d-1"})
	if err != nil || id != "b1" {
		t.Fatalf("first delivery: %q %v", id, err)
	}
	b.ID = "b2"
	id, err = s.CreateDeliveredBuild(ctx, b, coordinator.Delivery{Forge: "github", ID: "d-1"})
	if !errors.Is(err, coordinator.ErrDuplicate) || id != "b1" {
		t.Fatalf("the same delivery again: %q %v, want b1 and ErrDuplicate", id, err)
	}
	if _, err := s.GetBuild(ctx, "b2"); !errors.Is(err, coordinator.ErrNotFound) {
		t.Errorf("a duplicate delivery stored a build: %v", err)
	}
	// The same id from another forge is another delivery.
	if id, err := s.CreateDeliveredBuild(ctx, b, coordinator.Delivery{Forge: "gitlab", ID: "d-1"}); err != nil || id != "b2" {
		t.Errorf("another forge's delivery: %q %v", id, err)
	}
	got, err := s.GetBuild(ctx, "b1")
	must(t, err)
	if got.Trigger != "push to main by alice" || got.Forge != "github" {
		t.Errorf("stored %+v", got)
	}
}

// The same forge event delivered again under another delivery id makes no
// second build within the window; another event, another repository, or
// the window passed makes one. (sqlstore checks it survives a reopen.)
func theSameEventDeliveredAgainMakesOneBuild(t *testing.T, open Opener) {
	ctx := context.Background()
	const push = "push refs/heads/main 0123456789abcdef0123456789abcdef01234567"
	tests := []struct {
		name  string
		repo  string
		event string
		at    time.Duration // after the first build
		dup   bool
	}{
		{"the same event, another delivery id", "acme/app", push, 10 * time.Minute, true},
		{"the same event, at the window's very end", "acme/app", push, time.Hour, true},
		{"the same event after the window", "acme/app", push, time.Hour + time.Second, false},
		{"another commit", "acme/app", "push refs/heads/main 89abcdef0123456789abcdef0123456789abcdef", time.Minute, false},
		{"another branch", "acme/app", "push refs/heads/dev 0123456789abcdef0123456789abcdef01234567", time.Minute, false},
		{"another repository", "acme/other", push, time.Minute, false},
		{"no event named", "acme/app", "", time.Minute, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, nil)
			first := coordinator.Build{ID: "b1", Repo: "acme/app", Source: coordinator.Source{URL: "u"}, Created: t0}
			if _, err := s.CreateDeliveredBuild(ctx, first, coordinator.Delivery{Forge: "github", ID: "d-1", Event: push, Since: t0.Add(-time.Hour)}); err != nil {
				t.Fatal(err)
			}
			at := t0.Add(tc.at)
			b := coordinator.Build{ID: fmt.Sprintf("c%d", i), Repo: tc.repo, Source: coordinator.Source{URL: "u"}, Created: at}
			id, err := s.CreateDeliveredBuild(ctx, b, coordinator.Delivery{Forge: "github", ID: fmt.Sprintf("e-%d", i), Event: tc.event, Since: at.Add(-time.Hour)})
			_, stored := s.GetBuild(ctx, b.ID)
			switch {
			case tc.dup && (!errors.Is(err, coordinator.ErrDuplicate) || id != "b1" || stored == nil):
				t.Errorf("got %q, %v (stored: %v), want b1 and ErrDuplicate, nothing stored", id, err, stored == nil)
			case !tc.dup && (err != nil || id != b.ID || stored != nil):
				t.Errorf("got %q, %v (%v), want a build of its own", id, err, stored)
			}
		})
	}
}

// Deliveries that race make one build: the same delivery, and the same
// event under other delivery ids, from many callers at once.
func concurrentDeliveries(t *testing.T, open Opener) {
	racingDeliveries(t, []coordinator.Store{open(t, nil)})
}

// racingDeliveries is concurrentDeliveries with the callers spread over
// stores that share their data.
func racingDeliveries(t *testing.T, stores []coordinator.Store) {
	s := stores[0]
	ctx := context.Background()
	// Rounds of callers: one race is won by whoever comes first often
	// enough to hide a missing lock.
	const rounds, callers = 20, 12
	for r := range rounds {
		event := fmt.Sprintf("push refs/heads/main %040x", r)
		var wg sync.WaitGroup
		made := make(chan string, callers)
		for i := range callers {
			wg.Go(func() {
				b := coordinator.Build{ID: fmt.Sprintf("b%d-%d", r, i), Repo: "acme/app", Source: coordinator.Source{URL: "u"}, Created: t0}
				d := coordinator.Delivery{Forge: "github", ID: fmt.Sprintf("d%d-%d", r, i%3), Event: event, Since: t0.Add(-time.Hour)}
				id, err := stores[i%len(stores)].CreateDeliveredBuild(ctx, b, d)
				switch {
				case err == nil:
					made <- id
				case !errors.Is(err, coordinator.ErrDuplicate):
					t.Errorf("delivery %s: %v", d.ID, err)
				}
			})
		}
		wg.Wait()
		close(made)
		var first []string
		for id := range made {
			first = append(first, id)
		}
		if len(first) != 1 {
			t.Errorf("round %d: %d racing deliveries of one event made builds %v, want exactly one", r, callers, first)
		}
	}
	all, err := s.ListBuilds(ctx, coordinator.BuildFilter{})
	must(t, err)
	if len(all) != rounds {
		t.Errorf("%d stored builds, want one a round, %d", len(all), rounds)
	}
}
