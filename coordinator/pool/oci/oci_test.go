package oci

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"

	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/internal/ocitest"
)

var userData = base64.StdEncoding.EncodeToString([]byte("#cloud-config\nruncmd: [monkeyci agent]\n"))

// newProvider is a Provider on the fake, with its defaults except for
// what edit changes.
func newProvider(t *testing.T, f *fakeOCI, edit func(*Config)) *Provider {
	t.Helper()
	cfg := Config{
		CompartmentID:         f.compartment,
		AvailabilityDomain:    "Uocm:US-ASHBURN-AD-2",
		SubnetID:              "ocid1.subnet.oc1..agents",
		ImageID:               "ocid1.image.oc1..agent",
		UserData:              userData,
		ConfigurationProvider: f.key.Credentials(),
		Host:                  f.srv.URL,
		DisableCircuitBreaker: true,
		PollInterval:          time.Millisecond,
		CreateTimeout:         10 * time.Second, // never reached: the fake launches at once
	}
	if edit != nil {
		edit(&cfg)
	}
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// ensured is a Provider whose pool exists.
func ensured(t *testing.T, f *fakeOCI, edit func(*Config)) *Provider {
	t.Helper()
	p := newProvider(t, f, edit)
	if err := p.Ensure(context.Background()); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	return p
}

func ids(ins []pool.Instance) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

func TestEnsureMakesWhatIsMissing(t *testing.T) {
	const name = "monkeyci-agents"
	tests := []struct {
		name        string
		seed        func(f *fakeOCI) (wantPool string)
		wantConfigs int // CreateInstanceConfiguration calls
		wantPools   int // CreateInstancePool calls
	}{
		{"nothing there", func(*fakeOCI) string { return "" }, 1, 1},
		{"configuration left by a crash", func(f *fakeOCI) string {
			f.addConfig(name)
			return ""
		}, 0, 1},
		{"configuration behind other teams' ones, pages away", func(f *fakeOCI) string {
			for range 5 {
				f.addConfig("someone-else")
			}
			f.addConfig(name)
			return ""
		}, 0, 1},
		{"pool exists", func(f *fakeOCI) string {
			return f.addPool(name, f.addConfig(name), "RUNNING")
		}, 0, 0},
		{"only a terminated pool", func(f *fakeOCI) string {
			f.addPool(name, f.addConfig(name), "TERMINATED")
			return ""
		}, 0, 1},
		{"pool of another name", func(f *fakeOCI) string {
			f.addPool("other", f.addConfig("other"), "RUNNING")
			return ""
		}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeOCI(t)
			wantPool := tt.seed(f)
			p := ensured(t, f, nil)

			if got := f.count("POST", "/instanceConfigurations"); got != tt.wantConfigs {
				t.Errorf("CreateInstanceConfiguration calls = %d, want %d", got, tt.wantConfigs)
			}
			if got := f.count("POST", "/instancePools"); got != tt.wantPools {
				t.Errorf("CreateInstancePool calls = %d, want %d", got, tt.wantPools)
			}
			if wantPool != "" && p.PoolID() != wantPool {
				t.Errorf("PoolID = %q, want the existing %q", p.PoolID(), wantPool)
			}
			got := f.pool(p.PoolID())
			if got.name != name || got.state != "RUNNING" {
				t.Errorf("pool in use = %+v, want a live one named %q", got, name)
			}
		})
	}
}

func TestEnsureSendsTheLaunchDetails(t *testing.T) {
	f := newFakeOCI(t)
	p := ensured(t, f, nil) // Shape, OCPUs, MemoryGBs, DisplayName from the defaults

	cfg := f.lastBody("POST /20160918/instanceConfigurations").(*wireCreateConfig)
	d := cfg.InstanceDetails.LaunchDetails
	checks := []struct {
		what      string
		got, want any
	}{
		{"displayName", cfg.DisplayName, "monkeyci-agents"},
		{"compartmentId", d.CompartmentID, f.compartment},
		{"availabilityDomain", d.AvailabilityDomain, "Uocm:US-ASHBURN-AD-2"},
		{"shape", d.Shape, "VM.Standard.E4.Flex"},
		{"ocpus", d.ShapeConfig.Ocpus, 2.0},
		{"memoryInGBs", d.ShapeConfig.MemoryInGBs, 8.0},
		{"imageId", d.SourceDetails.ImageID, "ocid1.image.oc1..agent"},
		{"subnetId", d.CreateVnicDetails.SubnetID, "ocid1.subnet.oc1..agents"},
		{"user_data", d.Metadata["user_data"], userData},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("instance configuration %s = %v, want %v", c.what, c.got, c.want)
		}
	}

	pl := f.lastBody("POST /20160918/instancePools").(*wireCreatePool)
	if *pl.Size != 0 || pl.DisplayName != "monkeyci-agents" {
		t.Errorf("pool created with size %d and name %q, want 0 and monkeyci-agents", *pl.Size, pl.DisplayName)
	}
	got := f.pool(p.PoolID())
	if got.ad != "Uocm:US-ASHBURN-AD-2" || got.subnet != "ocid1.subnet.oc1..agents" {
		t.Errorf("pool placed in %s / %s", got.ad, got.subnet)
	}
}

func TestEnsureIsIdempotentAcrossRestarts(t *testing.T) {
	f := newFakeOCI(t)
	first := ensured(t, f, nil)
	calls := f.totalCalls()

	second := ensured(t, f, nil) // a restarted coordinator
	if second.PoolID() != first.PoolID() {
		t.Errorf("second Ensure uses %s, the first made %s", second.PoolID(), first.PoolID())
	}
	if n := f.count("POST", "/instanceConfigurations"); n != 1 {
		t.Errorf("%d instance configurations created, want 1", n)
	}
	if n := f.count("POST", "/instancePools"); n != 1 {
		t.Errorf("%d instance pools created, want 1", n)
	}
	if f.totalCalls() == calls {
		t.Error("the second Ensure did not look at OCI")
	}
}

func TestEnsureWithAGivenPool(t *testing.T) {
	f := newFakeOCI(t)
	live := f.addPool("hand-made", f.addConfig("hand-made"), "RUNNING")
	dead := f.addPool("old", f.addConfig("old"), "TERMINATED")
	elsewhere := f.addPool("theirs", f.addConfig("theirs"), "RUNNING")
	f.set(func(f *fakeOCI) { f.pools[len(f.pools)-1].compartment = "ocid1.compartment.oc1..other" })

	tests := []struct {
		name, id, wantErr string
	}{
		{"live pool", live, ""},
		{"unknown pool", "ocid1.instancepool.oc1..nope", "oci: reading the instance pool ocid1.instancepool.oc1..nope: 404 NotAuthorizedOrNotFound"},
		{"terminated pool", dead, "is TERMINATED"},
		{"pool of another compartment", elsewhere, "is in the compartment ocid1.compartment.oc1..other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No AD, subnet or image: with a pool id they are not needed.
			p, err := New(context.Background(), Config{
				CompartmentID: f.compartment, InstancePoolID: tt.id,
				ConfigurationProvider: f.key.Credentials(), Host: f.srv.URL, DisableCircuitBreaker: true,
			})
			if err != nil {
				t.Fatal(err)
			}
			err = p.Ensure(context.Background())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Ensure: %v", err)
				}
				if p.PoolID() != tt.id {
					t.Errorf("PoolID = %q", p.PoolID())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Ensure error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	if n := f.count("POST", ""); n != 0 {
		t.Errorf("%d POSTs: a given pool must never make anything", n)
	}
}

func TestNewChecksTheConfig(t *testing.T) {
	_, err := New(context.Background(), Config{CompartmentID: "c", ConfigurationProvider: ocitest.SharedKey(t).Credentials()})
	for _, field := range []string{"AvailabilityDomain", "SubnetID", "ImageID"} {
		if err == nil || !strings.Contains(err.Error(), field+" is required") {
			t.Errorf("New error = %v, want it to name %s", err, field)
		}
	}
}

func TestNeedsEnsureFirst(t *testing.T) {
	f := newFakeOCI(t)
	p := newProvider(t, f, nil)
	if _, err := p.List(context.Background()); err == nil || !strings.Contains(err.Error(), "call Ensure first") {
		t.Errorf("List before Ensure: %v", err)
	}
	if f.totalCalls() != 0 {
		t.Errorf("%d calls reached OCI", f.totalCalls())
	}
}

func TestCreateGrowsThePool(t *testing.T) {
	ctx := context.Background()
	f := newFakeOCI(t)
	p := ensured(t, f, nil)

	got, err := p.Create(ctx, 2)
	if err != nil {
		t.Fatalf("Create(2): %v", err)
	}
	if len(got) != 2 || got[0].ID == got[1].ID {
		t.Fatalf("Create(2) = %+v, want 2 distinct instances", got)
	}
	for _, in := range got {
		if in.Phase != pool.Starting || in.Created.IsZero() {
			t.Errorf("new instance %+v, want starting with a creation time", in)
		}
	}
	if size := f.pool(p.PoolID()).size; size != 2 {
		t.Errorf("pool size = %d, want 2", size)
	}

	more, err := p.Create(ctx, 1)
	if err != nil {
		t.Fatalf("Create(1): %v", err)
	}
	if len(more) != 1 || slices.Contains(ids(got), more[0].ID) {
		t.Errorf("Create(1) = %v, want one instance not among %v", ids(more), ids(got))
	}
	if size := f.pool(p.PoolID()).size; size != 3 {
		t.Errorf("pool size = %d, want 3", size)
	}

	calls := f.totalCalls()
	if none, err := p.Create(ctx, 0); err != nil || len(none) != 0 || f.totalCalls() != calls {
		t.Errorf("Create(0) = %v, %v after %d calls; want nothing and no call", none, err, f.totalCalls()-calls)
	}
}

func TestCreateWaitsForTheInstances(t *testing.T) {
	tests := []struct {
		name    string
		launch  launchMode
		timeout time.Duration
		want    int
	}{
		{"they show up one list at a time", launchOnePerList, 10 * time.Second, 3},
		// The only test that waits out its timeout: nothing ever shows up.
		{"out of capacity: fewer, no error", launchNever, 20 * time.Millisecond, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeOCI(t)
			p := ensured(t, f, func(c *Config) { c.CreateTimeout = tt.timeout })
			f.set(func(f *fakeOCI) { f.launch = tt.launch })

			got, err := p.Create(context.Background(), 3)
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if len(got) != tt.want {
				t.Errorf("Create(3) returned %d instances, want %d", len(got), tt.want)
			}
			if size := f.pool(p.PoolID()).size; size != 3 {
				t.Errorf("pool size = %d, want 3 whatever showed up", size)
			}
		})
	}
}

func TestCreateWithAConcurrentWriter(t *testing.T) {
	tests := []struct {
		name     string
		writes   int // updates another writer slips in before ours
		wantErr  string
		wantSize int
	}{
		{"one: read again and retry", 1, "", 1 + 2},
		{"every time: give up clearly", 99, "oci: resizing the instance pool", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeOCI(t)
			p := ensured(t, f, nil)
			writes := tt.writes
			f.set(func(f *fakeOCI) {
				f.onUpdate = func(fp *fakePool) {
					if writes > 0 {
						writes--
						f.resizeLocked(fp, fp.size+1)
					}
				}
			})

			got, err := p.Create(context.Background(), 2)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "412 NoEtagMatch") {
					t.Fatalf("Create error = %v, want %q and the 412", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if len(got) != 2 {
					t.Errorf("Create(2) = %v, want our 2 only, not the other writer's", ids(got))
				}
			}
			if size := f.pool(p.PoolID()).size; size != tt.wantSize {
				t.Errorf("pool size = %d, want %d: no update may be lost", size, tt.wantSize)
			}
			if n := f.count("PUT", p.PoolID()); n != 2 {
				t.Errorf("%d updates sent, want 2 (the first and one retry)", n)
			}
		})
	}
}

func TestListMapsStates(t *testing.T) {
	f := newFakeOCI(t)
	p := ensured(t, f, nil)
	born := time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)

	tests := []struct {
		state string // as ListInstancePoolInstances spells it
		want  pool.Phase
	}{
		{"Provisioning", pool.Starting},
		{"Starting", pool.Starting},
		{"Running", pool.Running},
		{"Moving", pool.Running},
		{"Stopping", pool.Stopping},
		{"Stopped", pool.Stopping},
		{"Terminating", pool.Stopping},
		{"Terminated", ""}, // left out
		{"RUNNING", pool.Running},
	}
	want := map[string]pool.Phase{}
	for _, tt := range tests {
		id := f.addInstance(p.PoolID(), tt.state, born)
		if tt.want != "" {
			want[id] = tt.want
		}
	}

	got, err := p.List(context.Background()) // 9 instances: 5 pages
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != len(want) {
		t.Errorf("List returned %d instances, want %d", len(got), len(want))
	}
	for _, in := range got {
		if in.Phase != want[in.ID] {
			t.Errorf("instance %s: phase %q, want %q", in.ID, in.Phase, want[in.ID])
		}
		if !in.Created.Equal(born) {
			t.Errorf("instance %s: created %v, want %v", in.ID, in.Created, born)
		}
	}
	if pages := f.count("GET", "/instances"); pages != 5 {
		t.Errorf("%d list requests, want 5 pages", pages)
	}
}

func TestDestroy(t *testing.T) {
	ctx := context.Background()
	f := newFakeOCI(t)
	p := ensured(t, f, nil)
	made, err := p.Create(ctx, 2)
	if err != nil || len(made) != 2 {
		t.Fatalf("Create(2) = %v, %v", made, err)
	}
	gone, kept := made[0].ID, made[1].ID

	if err := p.Destroy(ctx, gone); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	body := f.lastBody("POST /20160918/instancePools/{id}/actions/detachInstance")
	if !strings.Contains(fmt.Sprintf("%+v", body), gone) {
		t.Errorf("detach body %+v does not name %s", body, gone)
	}
	left, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(left); !slices.Equal(got, []string{kept}) {
		t.Errorf("after Destroy the pool lists %v, want [%s]", got, kept)
	}
	if size := f.pool(p.PoolID()).size; size != 1 {
		t.Errorf("pool size = %d, want 1: detach decrements", size)
	}

	// Already gone, or never ours: the scaler's goal is met either way.
	for _, id := range []string{gone, "ocid1.instance.oc1..stranger"} {
		if err := p.Destroy(ctx, id); err != nil {
			t.Errorf("Destroy(%s) = %v, want nil", id, err)
		}
	}
}

func TestServerErrorIsClearAndNotSticky(t *testing.T) {
	ctx := context.Background()
	f := newFakeOCI(t)
	p := ensured(t, f, nil)
	instances := "GET /20160918/instancePools/" + p.PoolID() + "/instances"

	// Ten failures would open the SDK's breaker if it were on.
	f.set(func(f *fakeOCI) { f.failNext[instances] = 10 })
	for range 10 {
		_, err := p.List(ctx)
		if err == nil {
			t.Fatal("List succeeded against a failing server")
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "oci: listing the instances of the pool "+p.PoolID()+": 500 InternalError: injected failure") ||
			strings.Contains(msg, "\n") {
			t.Fatalf("List error = %q, want one clear line", msg)
		}
	}
	before := f.count("GET", "/instances")
	if _, err := p.List(ctx); err != nil {
		t.Fatalf("List after the failures: %v", err)
	}
	if f.count("GET", "/instances") != before+1 {
		t.Error("the call after the failures did not reach the server")
	}
}

// The knob matters: with the SDK's breaker on, the same failures stop
// calls from leaving the process at all.
func TestCircuitBreakerOnStopsCalls(t *testing.T) {
	ctx := context.Background()
	f := newFakeOCI(t)
	id := ensured(t, f, nil).PoolID()
	// A fresh client: the breaker trips on 80 % failures over at least 10
	// calls, and Ensure's successes would dilute them.
	p := newProvider(t, f, func(c *Config) { c.InstancePoolID, c.DisableCircuitBreaker = id, false })
	f.set(func(f *fakeOCI) { f.failNext["GET /20160918/instancePools/"+id+"/instances"] = 10 })
	for range 10 {
		_, _ = p.List(ctx)
	}
	before := f.totalCalls()
	if _, err := p.List(ctx); err == nil || !strings.Contains(err.Error(), "circuit breaker") {
		t.Errorf("List with an open breaker: %v", err)
	}
	if f.totalCalls() != before {
		t.Error("the call went out through an open breaker")
	}
}

func TestRequestsSignedWithAnotherKeyAreRefused(t *testing.T) {
	f := newFakeOCI(t)
	other, err := ocitest.NewKey(f.key.User)
	if err != nil {
		t.Fatal(err)
	}
	// Same key id, wrong private key: only the signature check can tell.
	forged := common.NewRawConfigurationProvider(f.key.Tenancy, f.key.User, "us-ashburn-1", f.key.Fingerprint, other.PEM, nil)
	p := newProvider(t, f, func(c *Config) { c.ConfigurationProvider = forged })
	f.set(func(f *fakeOCI) { f.rejectsOK = true })

	err = p.Ensure(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401 NotAuthenticated") {
		t.Errorf("Ensure with a forged key: %v", err)
	}
	f.set(func(f *fakeOCI) {
		if f.rejected != 1 || len(f.calls) != 0 {
			t.Errorf("fake rejected %d and served %d requests, want 1 and 0", f.rejected, len(f.calls))
		}
	})
}
