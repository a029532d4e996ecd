package coordinator_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A repository's name, URLs and branch globs come from an operator's
// command line or a script: what no store keeps (a NUL: PostgreSQL refuses
// it in text) or no forge sends is refused with one line saying which
// flag, on every store alike.
func TestARepositoryWithAControlCharacterIsRefusedNamingTheFlag(t *testing.T) {
	f := newFleet(t, time.Minute)
	api := adminAPI(t, f)
	admin := as("admin-secret")
	for _, c := range []struct {
		name string
		repo *fleet.Repo
		says string
	}{
		{"a NUL in the name", &fleet.Repo{Name: "acme/a\x00pp", Url: "https://git.example/acme/app.git"}, "name"},
		{"an escape in the name", &fleet.Repo{Name: "acme/\x1b[31mapp", Url: "https://git.example/acme/app.git"}, "name"},
		{"a NUL in the URL", &fleet.Repo{Name: "acme/app", Url: "https://git.example/acme/\x00app.git"}, "--url"},
		{"a NUL in the API URL", &fleet.Repo{Name: "acme/app", Url: "https://git.example/acme/app.git", ApiUrl: "https://api.example/\x00"}, "--api-url"},
		{"a NUL in a branch glob", &fleet.Repo{Name: "acme/app", Url: "https://git.example/acme/app.git", Branches: []string{"ma\x00in"}}, "--branches"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := api.AddRepo(admin, c.repo)
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.says) {
				t.Errorf("got %v, want InvalidArgument naming %s", err, c.says)
			}
		})
	}
	if rs, err := api.ListRepos(admin, &fleet.ListReposRequest{}); err != nil || len(rs.GetRepos()) != 0 {
		t.Errorf("stored: %v %v", rs, err)
	}
}
