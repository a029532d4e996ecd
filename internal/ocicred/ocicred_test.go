package ocicred

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/oracle/oci-go-sdk/v65/common"
)

func TestProviderWinsOverEverythingElse(t *testing.T) {
	want := common.NewRawConfigurationProvider("ocid1.tenancy.oc1..given", "u", "r", "f", "k", nil)
	// InstancePrincipal would call the metadata service: it must not be reached.
	got, err := Source{Provider: want, InstancePrincipal: true, Profile: "ci"}.ConfigurationProvider()
	if err != nil || got != want {
		t.Fatalf("got %v, %v; want the given provider", got, err)
	}
}

func TestFileAndProfile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config")
	cfg := "[DEFAULT]\ntenancy=ocid1.tenancy.oc1..default\nregion=us-ashburn-1\n\n" +
		"[ci]\ntenancy=ocid1.tenancy.oc1..ci\nregion=eu-frankfurt-1\n"
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ profile, tenancy string }{
		{"", "ocid1.tenancy.oc1..default"}, // no profile: DEFAULT
		{"ci", "ocid1.tenancy.oc1..ci"},
	} {
		p, err := Source{File: file, Profile: tc.profile}.ConfigurationProvider()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := p.TenancyOCID(); err != nil || got != tc.tenancy {
			t.Errorf("profile %q: tenancy %q, %v; want %q", tc.profile, got, err, tc.tenancy)
		}
	}
}
