package coordinator_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A build is named by its whole id or by the start of exactly one id; an
// ambiguous start names its candidates, an unknown one says no build.
func TestABuildIsNamedByAPrefixOfItsID(t *testing.T) {
	f := newFleet(t, time.Minute)
	ctx := context.Background()
	ids := []string{"0190aa01", "0190aa02", "0190bb01", "cafe", "cafe01"}
	for i := range 7 {
		ids = append(ids, "77770"+string(rune('a'+i)))
	}
	for _, id := range ids {
		if err := f.store.CreateBuild(ctx, coordinator.Build{ID: id, Source: coordinator.Source{URL: "/nowhere"}, State: coordinator.Ended}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		ref     string
		want    string
		err     error
		says    []string
		notSays []string
	}{
		{ref: "0190bb01", want: "0190bb01"},
		{ref: "0190b", want: "0190bb01"},
		{ref: " 0190b\n", want: "0190bb01"},
		{ref: "0190aa0", err: coordinator.ErrAmbiguous, says: []string{"0190aa01", "0190aa02"}, notSays: []string{"0190bb01"}},
		{ref: "0", err: coordinator.ErrAmbiguous, says: []string{"0190aa01", "0190aa02", "0190bb01"}},
		{ref: "7777", err: coordinator.ErrAmbiguous, says: []string{"77770a", "77770e", ", ..."}, notSays: []string{"77770f"}},
		// A whole id names its build although it starts another one.
		{ref: "cafe", want: "cafe"},
		{ref: "cafe0", want: "cafe01"},
		{ref: "dead", err: coordinator.ErrNotFound, says: []string{"no build dead"}},
		{ref: "0190bb011", err: coordinator.ErrNotFound, says: []string{"no build 0190bb011"}},
		{ref: "%", err: coordinator.ErrNotFound},
		{ref: "_", err: coordinator.ErrNotFound},
		{ref: "", err: coordinator.ErrNotFound, says: []string{"no build named"}},
		{ref: "  ", err: coordinator.ErrNotFound},
	}
	for _, tc := range tests {
		got, err := f.c.ResolveBuild(ctx, tc.ref)
		if tc.err == nil {
			if err != nil || got != tc.want {
				t.Errorf("ResolveBuild(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
			}
			continue
		}
		if !errors.Is(err, tc.err) || got != "" {
			t.Errorf("ResolveBuild(%q) = %q, %v; want %v", tc.ref, got, err, tc.err)
			continue
		}
		for _, s := range tc.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("ResolveBuild(%q): %q does not say %q", tc.ref, err, s)
			}
		}
		for _, s := range tc.notSays {
			if strings.Contains(err.Error(), s) {
				t.Errorf("ResolveBuild(%q): %q names %q", tc.ref, err, s)
			}
		}
		if strings.Count(err.Error(), "\n") != 0 {
			t.Errorf("ResolveBuild(%q): %q is more than one line", tc.ref, err)
		}
	}
}

// Every admin call that takes a build id takes a unique prefix of it over
// gRPC, refuses an ambiguous one as an invalid argument naming the
// candidates, and an unknown one as not found.
func TestEveryAdminCallTakesABuildIDPrefix(t *testing.T) {
	f := newFleet(t, time.Minute)
	api := adminAPI(t, f)
	admin := as("admin-secret")
	var ids []string
	for range 2 {
		b, err := api.Trigger(admin, &fleet.TriggerRequest{Url: "/nowhere"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, b.GetId())
	}
	common := 0
	for common < len(ids[0]) && ids[0][common] == ids[1][common] {
		common++
	}
	ambiguous, unique := ids[0][:common], ids[0][:common+1]
	logs := func(ref string) (string, error) {
		s, err := api.Logs(admin, &fleet.LogsRequest{Build: ref})
		if err != nil {
			return "", err
		}
		if _, err := s.Recv(); err != nil && err != io.EOF {
			return "", err
		}
		return ids[0], nil // the stream names no build: it was found
	}
	calls := []struct {
		name string
		call func(ref string) (string, error)
	}{
		{"builds show", func(ref string) (string, error) {
			d, err := api.GetBuild(admin, &fleet.GetBuildRequest{Id: ref})
			return d.GetBuild().GetId(), err
		}},
		{"logs", logs},
		{"cancel", func(ref string) (string, error) {
			b, err := api.CancelBuild(admin, &fleet.BuildRef{Id: ref})
			return b.GetId(), err
		}},
		{"retry", func(ref string) (string, error) { // after the cancel above
			b, err := api.RetryBuild(admin, &fleet.BuildRef{Id: ref})
			return b.GetId(), err
		}},
		{"unblock", func(ref string) (string, error) {
			b, err := api.UnblockJob(admin, &fleet.UnblockJobRequest{Build: ref, Job: "gate"})
			if status.Code(err) == codes.FailedPrecondition && strings.Contains(err.Error(), ids[0]) {
				return ids[0], nil // found: it is not running, so nothing waits
			}
			return b.GetId(), err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if got, err := c.call(unique); err != nil || got != ids[0] {
				t.Errorf("%s %s: %q %v, want build %s", c.name, unique, got, err, ids[0])
			}
			_, err := c.call(ambiguous)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), ids[0]) || !strings.Contains(err.Error(), ids[1]) {
				t.Errorf("%s %s: %v, want an invalid argument naming %s and %s", c.name, ambiguous, err, ids[0], ids[1])
			}
			_, err = c.call("zz" + unique)
			if status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "no build zz"+unique) {
				t.Errorf("%s zz%s: %v, want not found saying no build", c.name, unique, err)
			}
		})
	}
}
