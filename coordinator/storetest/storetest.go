// Package storetest is the contract every coordinator.Store keeps, as one
// suite run against each store: sqlstore (SQLite) and memstore (memory).
// A store that passes it can stand in for the other in the coordinator.
package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
)

// Opener makes an empty store for one test, closed when the test ends.
// now, when not nil, is the store's clock (the times it stamps).
type Opener func(t *testing.T, now func() time.Time) coordinator.Store

// Run runs the whole contract against stores made by open.
func Run(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		test func(*testing.T, Opener)
	}{
		{"CreateAndGetBuild", createAndGetBuild},
		{"ListBuilds", listBuilds},
		{"BuildIDs", buildIDs},
		{"QueuedAndRunning", queuedAndRunning},
		{"SetWaiting", setWaiting},
		{"LifecycleAndFencing", lifecycleAndFencing},
		{"Handback", handback},
		{"ChangesOfMissingBuilds", changesOfMissingBuilds},
		{"CanceledContext", canceledContext},
		{"AppendEventOutOfOrder", appendEventOutOfOrder},
		{"LastSeqRandom", lastSeqRandom},
		{"AppendEventFencing", appendEventFencing},
		{"EventRoundTrip", eventRoundTrip},
		{"ConcurrentAppendEvent", concurrentAppendEvent},
		{"ConcurrentAssign", concurrentAssign},
		{"ConcurrentUse", concurrentUse},
		{"ReposAndTheirSecrets", reposAndTheirSecrets},
		{"AURLCredentialStaysOnlyWithItsURL", aURLCredentialStaysOnlyWithItsURL},
		{"ADeliveryMakesOneBuild", aDeliveryMakesOneBuild},
		{"TheSameEventDeliveredAgainMakesOneBuild", theSameEventDeliveredAgainMakesOneBuild},
		{"ConcurrentDeliveries", concurrentDeliveries},
		{"Agents", agents},
		{"Tokens", tokens},
		{"RemoveAgent", removeAgent},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, open) })
	}
}

// Shared opens several stores on one empty set of data, as several
// coordinators open one database, closed when the test ends.
type Shared func(t *testing.T) []coordinator.Store

// RunShared runs the races of the contract with their callers spread over
// stores that share their data: what one store decides, the others see.
func RunShared(t *testing.T, open Shared) {
	for _, c := range []struct {
		name string
		test func(*testing.T, []coordinator.Store)
	}{
		{"RacingAppends", racingAppends},
		{"RacingAssigns", racingAssigns},
		{"RacingDeliveries", racingDeliveries},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, open(t)) })
	}
}

// t0 is a fixed moment; builds are created at t0 plus a few seconds.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC)

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// build is a queued build created at t0 + sec seconds.
func build(id string, sec int) coordinator.Build {
	return coordinator.Build{
		ID: id, Repo: "repo-" + id, Source: coordinator.Source{URL: "file:///src/" + id},
		State: coordinator.Queued, Created: t0.Add(time.Duration(sec) * time.Second),
	}
}

func ids(bs []coordinator.Build) []string {
	out := []string{}
	for _, b := range bs {
		out = append(out, b.ID)
	}
	return out
}

func get(t testing.TB, s coordinator.Store, id string) coordinator.Build {
	t.Helper()
	b, err := s.GetBuild(context.Background(), id)
	must(t, err)
	return b
}

// running creates build id and assigns it as attempt 1.
func running(t testing.TB, s coordinator.Store, id string) {
	t.Helper()
	ctx := context.Background()
	must(t, s.CreateBuild(ctx, build(id, 0)))
	must(t, s.Assign(ctx, id, 1, "ag", time.Now().Add(time.Hour)))
}

func ev(id string, attempt int, seq int64) coordinator.StoredEvent {
	return coordinator.StoredEvent{BuildID: id, Attempt: attempt, Seq: seq, Event: events.Event{Type: events.JobEnd, Job: fmt.Sprint("job-", seq)}}
}
