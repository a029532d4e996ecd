// Package ocicred picks the OCI credentials the pool provider and the blob
// store use, so both read the same settings the same way.
package ocicred

import (
	"fmt"

	"github.com/oracle/oci-go-sdk/v65/common"
	"github.com/oracle/oci-go-sdk/v65/common/auth"
)

// Source says where credentials come from; the first one set wins:
// Provider, then InstancePrincipal, then File/Profile, else the SDK's
// default chain.
type Source struct {
	Provider          common.ConfigurationProvider
	InstancePrincipal bool
	// File is an OCI config file (empty: ~/.oci/config); Profile one of
	// its profiles (empty: DEFAULT).
	File, Profile string
}

// ConfigurationProvider is the provider the Source names. Only an instance
// principal can fail here: it reads the instance metadata service now.
func (s Source) ConfigurationProvider() (common.ConfigurationProvider, error) {
	switch {
	case s.Provider != nil:
		return s.Provider, nil
	case s.InstancePrincipal:
		p, err := auth.InstancePrincipalConfigurationProvider()
		if err != nil {
			return nil, fmt.Errorf("instance principal: %w", err)
		}
		return p, nil
	case s.File != "" || s.Profile != "":
		profile := s.Profile
		if profile == "" {
			profile = "DEFAULT"
		}
		// The SDK reads an empty path as ~/.oci/config.
		return common.CustomProfileConfigProvider(s.File, profile), nil
	default:
		return common.DefaultConfigProvider(), nil
	}
}
