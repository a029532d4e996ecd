package oci

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/ocitest"
)

// fakeOCI is an in-memory Compute Management API (the part the provider
// uses) that speaks the real wire format: the SDK's paths under /20160918/,
// camelCase JSON, opc-next-page paging, etags with If-Match, and JSON error
// bodies. Every request must be signed with the test's key; one that is
// not, or that breaks the API's rules, gets a 4xx and fails the test.
type fakeOCI struct {
	t           *testing.T
	srv         *httptest.Server
	key         *ocitest.Key
	compartment string
	pageSize    int

	mu       sync.Mutex
	seq      int
	configs  []*fakeConfig
	pools    []*fakePool
	calls    []string         // "METHOD /path" of every signed request
	failNext map[string]int   // "METHOD /path" -> how many 500s to answer
	launch   launchMode       // how fast a bigger size becomes instances
	onUpdate func(*fakePool)  // runs before the If-Match check: a concurrent writer
	bodies   map[string][]any // "METHOD pattern" -> decoded request bodies

	rejectsOK bool // the test expects unsigned requests: do not fail it
	rejected  int
}

type launchMode int

const (
	launchAtOnce     launchMode = iota // instances listed as soon as the size grows
	launchOnePerList                   // each list of the pool's instances shows one more
	launchNever                        // OCI out of capacity: nothing shows up
)

type fakeConfig struct {
	id, name string
	created  time.Time
}

type fakePool struct {
	id, name, configID, ad, subnet, state string
	compartment                           string // empty: the fake's
	size, pending, etag                   int
	created                               time.Time
	instances                             []*fakeInstance
}

type fakeInstance struct {
	id, state string
	created   time.Time
}

const apiPrefix = "/20160918"

func newFakeOCI(t *testing.T) *fakeOCI {
	f := &fakeOCI{
		t:           t,
		key:         ocitest.SharedKey(t),
		compartment: "ocid1.compartment.oc1..monkeyci",
		pageSize:    2, // small, so every list crosses pages
		failNext:    map[string]int{},
		bodies:      map[string][]any{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+apiPrefix+"/instanceConfigurations", f.listConfigurations)
	mux.HandleFunc("POST "+apiPrefix+"/instanceConfigurations", f.createConfiguration)
	mux.HandleFunc("GET "+apiPrefix+"/instancePools", f.listPools)
	mux.HandleFunc("POST "+apiPrefix+"/instancePools", f.createPool)
	mux.HandleFunc("GET "+apiPrefix+"/instancePools/{id}", f.getPool)
	mux.HandleFunc("PUT "+apiPrefix+"/instancePools/{id}", f.updatePool)
	mux.HandleFunc("GET "+apiPrefix+"/instancePools/{id}/instances", f.listInstances)
	mux.HandleFunc("POST "+apiPrefix+"/instancePools/{id}/actions/detachInstance", f.detach)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.t.Errorf("fake OCI: unexpected request %s %s", r.Method, r.URL)
		writeError(w, http.StatusNotFound, "NotAuthorizedOrNotFound", "no such operation")
	})
	f.srv = httptest.NewServer(f.gate(mux))
	t.Cleanup(f.srv.Close)
	return f
}

// gate checks the signature, logs the call and injects failures before
// the request reaches its handler.
func (f *fakeOCI) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			f.t.Errorf("fake OCI: reading the body: %v", err)
			return
		}
		if err := f.key.Verify(r, body, false); err != nil {
			f.mu.Lock()
			f.rejected++
			ok := f.rejectsOK
			f.mu.Unlock()
			if !ok {
				f.t.Errorf("fake OCI: %s %s: bad signature: %v", r.Method, r.URL.Path, err)
			}
			writeError(w, http.StatusUnauthorized, "NotAuthenticated", err.Error())
			return
		}
		call := r.Method + " " + r.URL.Path
		f.mu.Lock()
		f.calls = append(f.calls, call)
		fail := f.failNext[call] > 0
		if fail {
			f.failNext[call]--
		}
		f.mu.Unlock()
		if fail {
			writeError(w, http.StatusInternalServerError, "InternalError", "injected failure")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// --- instance configurations

type wireConfigSummary struct {
	CompartmentID string `json:"compartmentId"`
	ID            string `json:"id"`
	TimeCreated   string `json:"timeCreated"`
	DisplayName   string `json:"displayName"`
}

// wireCreateConfig is CreateInstanceConfigurationDetails as the API
// documents it, with its three type discriminators.
type wireCreateConfig struct {
	Source          string `json:"source"`
	CompartmentID   string `json:"compartmentId"`
	DisplayName     string `json:"displayName"`
	InstanceDetails struct {
		InstanceType  string `json:"instanceType"`
		LaunchDetails struct {
			CompartmentID      string `json:"compartmentId"`
			AvailabilityDomain string `json:"availabilityDomain"`
			Shape              string `json:"shape"`
			ShapeConfig        struct {
				Ocpus       float64 `json:"ocpus"`
				MemoryInGBs float64 `json:"memoryInGBs"`
			} `json:"shapeConfig"`
			SourceDetails struct {
				SourceType string `json:"sourceType"`
				ImageID    string `json:"imageId"`
			} `json:"sourceDetails"`
			CreateVnicDetails struct {
				SubnetID string `json:"subnetId"`
			} `json:"createVnicDetails"`
			Metadata map[string]string `json:"metadata"`
		} `json:"launchDetails"`
	} `json:"instanceDetails"`
}

func (f *fakeOCI) listConfigurations(w http.ResponseWriter, r *http.Request) {
	if !f.checkCompartment(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wireConfigSummary
	for _, c := range f.configs {
		out = append(out, wireConfigSummary{f.compartment, c.id, stamp(c.created), c.name})
	}
	f.writePage(w, r, out)
}

func (f *fakeOCI) createConfiguration(w http.ResponseWriter, r *http.Request) {
	var in wireCreateConfig
	if !f.decode(w, r, &in) {
		return
	}
	d := in.InstanceDetails.LaunchDetails
	if problem := firstProblem(
		check(in.Source == "NONE", "source %q, want NONE", in.Source),
		check(in.CompartmentID == f.compartment, "compartmentId %q", in.CompartmentID),
		check(in.InstanceDetails.InstanceType == "compute", "instanceType %q, want compute", in.InstanceDetails.InstanceType),
		check(d.SourceDetails.SourceType == "image", "sourceType %q, want image", d.SourceDetails.SourceType),
		check(d.SourceDetails.ImageID != "", "no imageId"),
		check(d.AvailabilityDomain != "" && d.Shape != "" && d.CreateVnicDetails.SubnetID != "", "launch details incomplete"),
	); problem != "" {
		f.reject(w, r, problem)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.addConfigLocked(in.DisplayName)
	w.Header().Set("etag", "config-etag-1")
	writeJSON(w, http.StatusOK, map[string]any{
		"compartmentId": f.compartment, "id": c.id, "displayName": c.name,
		"timeCreated": stamp(c.created), "instanceDetails": in.InstanceDetails,
	})
}

// --- instance pools

type wirePlacement struct {
	AvailabilityDomain string `json:"availabilityDomain"`
	PrimaryVnicSubnets *struct {
		SubnetID string `json:"subnetId"`
	} `json:"primaryVnicSubnets"`
}

type wireCreatePool struct {
	CompartmentID           string          `json:"compartmentId"`
	InstanceConfigurationID string          `json:"instanceConfigurationId"`
	DisplayName             string          `json:"displayName"`
	Size                    *int            `json:"size"`
	PlacementConfigurations []wirePlacement `json:"placementConfigurations"`
}

func (f *fakeOCI) wirePool(p *fakePool) map[string]any {
	compartment := cmp.Or(p.compartment, f.compartment)
	return map[string]any{
		"id": p.id, "compartmentId": compartment, "instanceConfigurationId": p.configID,
		"lifecycleState": p.state, "size": p.size, "timeCreated": stamp(p.created), "displayName": p.name,
		"placementConfigurations": []map[string]any{{
			"availabilityDomain": p.ad, "primaryVnicSubnets": map[string]any{"subnetId": p.subnet},
		}},
	}
}

func (f *fakeOCI) listPools(w http.ResponseWriter, r *http.Request) {
	if !f.checkCompartment(w, r) {
		return
	}
	name := r.URL.Query().Get("displayName")
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []map[string]any
	for _, p := range f.pools {
		if name != "" && p.name != name {
			continue
		}
		out = append(out, map[string]any{
			"id": p.id, "compartmentId": f.compartment, "instanceConfigurationId": p.configID,
			"lifecycleState": p.state, "availabilityDomains": []string{p.ad}, "size": p.size,
			"timeCreated": stamp(p.created), "displayName": p.name,
		})
	}
	f.writePage(w, r, out)
}

func (f *fakeOCI) createPool(w http.ResponseWriter, r *http.Request) {
	var in wireCreatePool
	if !f.decode(w, r, &in) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if problem := firstProblem(
		check(in.CompartmentID == f.compartment, "compartmentId %q", in.CompartmentID),
		check(slices.ContainsFunc(f.configs, func(c *fakeConfig) bool { return c.id == in.InstanceConfigurationID }),
			"unknown instanceConfigurationId %q", in.InstanceConfigurationID),
		check(in.Size != nil && *in.Size >= 0, "size missing or negative"),
		check(len(in.PlacementConfigurations) == 1, "%d placement configurations, want 1", len(in.PlacementConfigurations)),
	); problem != "" {
		f.reject(w, r, problem)
		return
	}
	pc := in.PlacementConfigurations[0]
	if pc.AvailabilityDomain == "" || pc.PrimaryVnicSubnets == nil || pc.PrimaryVnicSubnets.SubnetID == "" {
		f.reject(w, r, "placement configuration needs availabilityDomain and primaryVnicSubnets.subnetId")
		return
	}
	p := f.addPoolLocked(in.DisplayName, in.InstanceConfigurationID, "RUNNING")
	p.ad, p.subnet = pc.AvailabilityDomain, pc.PrimaryVnicSubnets.SubnetID
	f.resizeLocked(p, *in.Size)
	f.writePool(w, p)
}

func (f *fakeOCI) getPool(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.poolLocked(w, r); p != nil {
		f.writePool(w, p)
	}
}

func (f *fakeOCI) updatePool(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Size *int `json:"size"`
	}
	if !f.decode(w, r, &in) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.poolLocked(w, r)
	if p == nil {
		return
	}
	if f.onUpdate != nil {
		f.onUpdate(p)
	}
	match := r.Header.Get("If-Match")
	switch {
	case match == "":
		f.reject(w, r, "no If-Match: a concurrent update could be lost")
		return
	case match != etag(p):
		writeError(w, http.StatusPreconditionFailed, "NoEtagMatch",
			fmt.Sprintf("The resource's etag is %s, not %s", etag(p), match))
		return
	}
	if in.Size == nil || *in.Size < p.size {
		f.reject(w, r, "size missing or lowered: OCI would choose which instances die")
		return
	}
	f.resizeLocked(p, *in.Size)
	f.writePool(w, p)
}

func (f *fakeOCI) listInstances(w http.ResponseWriter, r *http.Request) {
	if !f.checkCompartment(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.poolLocked(w, r)
	if p == nil {
		return
	}
	// A page after the first is the same listing, so only it launches.
	if f.launch == launchOnePerList && p.pending > 0 && r.URL.Query().Get("page") == "" {
		f.launchLocked(p, 1)
	}
	var out []map[string]any
	for _, in := range p.instances {
		out = append(out, map[string]any{
			"id": in.id, "availabilityDomain": p.ad, "compartmentId": f.compartment,
			"instanceConfigurationId": p.configID, "region": "us-ashburn-1", "state": in.state,
			"timeCreated": stamp(in.created), "displayName": "inst-" + in.id,
			"faultDomain": "FAULT-DOMAIN-1", "shape": "VM.Standard.E4.Flex",
		})
	}
	f.writePage(w, r, out)
}

func (f *fakeOCI) detach(w http.ResponseWriter, r *http.Request) {
	var in struct {
		InstanceID      string `json:"instanceId"`
		IsDecrementSize *bool  `json:"isDecrementSize"`
		IsAutoTerminate *bool  `json:"isAutoTerminate"`
	}
	if !f.decode(w, r, &in) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.poolLocked(w, r)
	if p == nil {
		return
	}
	if in.IsDecrementSize == nil || !*in.IsDecrementSize || in.IsAutoTerminate == nil || !*in.IsAutoTerminate {
		f.reject(w, r, "detach without isDecrementSize and isAutoTerminate leaves a replacement or an orphan")
		return
	}
	i := slices.IndexFunc(p.instances, func(in2 *fakeInstance) bool { return in2.id == in.InstanceID })
	if i < 0 {
		writeError(w, http.StatusNotFound, "NotAuthorizedOrNotFound", "instance "+in.InstanceID+" is not in the pool")
		return
	}
	p.instances = slices.Delete(p.instances, i, i+1)
	p.size--
	p.etag++
	w.Header().Set("opc-work-request-id", "ocid1.workrequest.oc1..detach")
	w.WriteHeader(http.StatusAccepted)
}

// --- state

func (f *fakeOCI) nextID(kind string) string {
	f.seq++
	return fmt.Sprintf("ocid1.%s.oc1.iad.fake%d", kind, f.seq)
}

func (f *fakeOCI) addConfigLocked(name string) *fakeConfig {
	c := &fakeConfig{id: f.nextID("instanceconfiguration"), name: name, created: time.Now().UTC()}
	f.configs = append(f.configs, c)
	return c
}

func (f *fakeOCI) addPoolLocked(name, configID, state string) *fakePool {
	p := &fakePool{id: f.nextID("instancepool"), name: name, configID: configID, state: state,
		ad: "Uocm:US-ASHBURN-AD-1", subnet: "ocid1.subnet.oc1..agents", created: time.Now().UTC()}
	f.pools = append(f.pools, p)
	return p
}

// resizeLocked sets a bigger size; the new instances launch as the launch
// mode says.
func (f *fakeOCI) resizeLocked(p *fakePool, size int) {
	p.pending += size - p.size
	p.size = size
	p.etag++
	if f.launch == launchAtOnce {
		f.launchLocked(p, p.pending)
	}
}

func (f *fakeOCI) launchLocked(p *fakePool, n int) {
	for range n {
		p.instances = append(p.instances, &fakeInstance{id: f.nextID("instance"), state: "Provisioning", created: time.Now().UTC()})
		p.pending--
	}
}

func (f *fakeOCI) poolLocked(w http.ResponseWriter, r *http.Request) *fakePool {
	id := r.PathValue("id")
	for _, p := range f.pools {
		if p.id == id {
			return p
		}
	}
	writeError(w, http.StatusNotFound, "NotAuthorizedOrNotFound", "instance pool "+id+" not found")
	return nil
}

// seed helpers for the tests

func (f *fakeOCI) addConfig(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addConfigLocked(name).id
}

func (f *fakeOCI) addPool(name, configID, state string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addPoolLocked(name, configID, state).id
}

// addInstance puts an instance in the pool as if OCI had launched it.
func (f *fakeOCI) addInstance(poolID, state string, created time.Time) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pools {
		if p.id == poolID {
			in := &fakeInstance{id: f.nextID("instance"), state: state, created: created}
			p.instances = append(p.instances, in)
			p.size++
			p.etag++
			return in.id
		}
	}
	f.t.Fatalf("no pool %s", poolID)
	return ""
}

func (f *fakeOCI) pool(id string) fakePool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pools {
		if p.id == id {
			return *p
		}
	}
	f.t.Fatalf("no pool %s", id)
	return fakePool{}
}

func (f *fakeOCI) set(fn func(f *fakeOCI)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// count tells how many signed requests matched METHOD and a path suffix.
func (f *fakeOCI) count(method, suffix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		m, path, _ := strings.Cut(c, " ")
		if m == method && strings.HasSuffix(path, suffix) {
			n++
		}
	}
	return n
}

func (f *fakeOCI) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeOCI) lastBody(pattern string) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.bodies[pattern]
	if len(b) == 0 {
		f.t.Fatalf("no request body recorded for %s", pattern)
	}
	return b[len(b)-1]
}
