// Package oci is the pool.Provider for Oracle Cloud: the agents run on the
// instances of one OCI instance pool, grown by raising the pool's size and
// shrunk by detaching a chosen instance (so OCI never picks which one dies).
package oci

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/core"

	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/internal/ocicred"
)

// Config says which pool to use, or how to make one, and how to reach OCI.
type Config struct {
	// CompartmentID holds the pool and its instance configuration.
	CompartmentID string
	// InstancePoolID names an existing pool. Empty: Ensure finds or makes
	// one from the fields below.
	InstancePoolID string

	// What Ensure makes when InstancePoolID is empty.
	AvailabilityDomain string
	SubnetID           string
	ImageID            string
	Shape              string  // default "VM.Standard.E4.Flex"
	OCPUs              float32 // default 2
	MemoryGBs          float32 // default 8
	UserData           string  // base64 cloud-init, rendered by the caller
	DisplayName        string  // of the pool and its configuration; default "monkeyci-agents"

	// Credentials, first match wins: ConfigurationProvider, then
	// InstancePrincipal, then ConfigFile/Profile (empty: ~/.oci/config and
	// its DEFAULT profile).
	ConfigurationProvider common.ConfigurationProvider
	InstancePrincipal     bool
	ConfigFile            string
	Profile               string

	// Host replaces the regional endpoint, e.g. a test server's URL.
	Host string
	// DisableCircuitBreaker turns off the SDK's per-client circuit breaker,
	// which otherwise refuses calls for 30 s after a run of 5xx answers.
	DisableCircuitBreaker bool

	// Create polls the pool every PollInterval (default 2 s) for at most
	// CreateTimeout (default 60 s) until the new instances show up.
	PollInterval  time.Duration
	CreateTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Shape == "" {
		c.Shape = "VM.Standard.E4.Flex"
	}
	if c.OCPUs == 0 {
		c.OCPUs = 2
	}
	if c.MemoryGBs == 0 {
		c.MemoryGBs = 8
	}
	if c.DisplayName == "" {
		c.DisplayName = "monkeyci-agents"
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Second
	}
	if c.CreateTimeout <= 0 {
		c.CreateTimeout = 60 * time.Second
	}
	return c
}

func (c Config) validate() error {
	var missing []error
	need := func(v, name string) {
		if v == "" {
			missing = append(missing, fmt.Errorf("oci: config: %s is required", name))
		}
	}
	need(c.CompartmentID, "CompartmentID")
	if c.InstancePoolID == "" { // Ensure will have to make the pool
		need(c.AvailabilityDomain, "AvailabilityDomain")
		need(c.SubnetID, "SubnetID")
		need(c.ImageID, "ImageID")
	}
	return errors.Join(missing...)
}

// Provider is the OCI pool.Provider. Call Ensure once before using it.
type Provider struct {
	cfg    Config
	client core.ComputeManagementClient

	mu     sync.Mutex // guards poolID, which Ensure may fill in
	poolID string
}

var _ pool.Provider = (*Provider)(nil)

// New checks the config and builds the client. It calls nothing, except
// that instance principals read the instance metadata service; ctx is
// unused because the SDK's constructors take none.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	creds, err := ocicred.Source{Provider: cfg.ConfigurationProvider, InstancePrincipal: cfg.InstancePrincipal,
		File: cfg.ConfigFile, Profile: cfg.Profile}.ConfigurationProvider()
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	client, err := core.NewComputeManagementClientWithConfigurationProvider(creds)
	if err != nil {
		return nil, fmt.Errorf("oci: creating the compute management client: %w", err)
	}
	// The constructor sets Host from the region, so the override comes after.
	if cfg.Host != "" {
		client.Host = cfg.Host
	}
	// Per client, not common.GlobalCircuitBreakerSetting: a nil breaker is
	// how the SDK itself spells "disabled".
	if cfg.DisableCircuitBreaker {
		client.Configuration.CircuitBreaker = nil
	}
	// No SDK retries, whatever OCI_SDK_DEFAULT_RETRY_ENABLED says: the
	// scaler calls again on its next tick, and a retry loop of its own
	// here would only hide a failing API behind minutes of back-off.
	noRetry := common.NoRetryPolicy()
	client.Configuration.RetryPolicy = &noRetry
	return &Provider{cfg: cfg, client: client, poolID: cfg.InstancePoolID}, nil
}

// PoolID is the instance pool in use; empty before Ensure made or found it.
func (p *Provider) PoolID() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.poolID
}

func (p *Provider) pool() (string, error) {
	if id := p.PoolID(); id != "" {
		return id, nil
	}
	return "", errors.New("oci: no instance pool yet: call Ensure first")
}
